#!/usr/bin/env python3
# tests/unit/loadgen/dying_target.py: a cefd that dies under load, for `cefd-loadgen size`. Binds a
# UDP port (so `size` finds its pid), serves Prometheus /metrics twice (size's start-up check and
# the first trial's "before" scrape), then exits, as a crashed collector would. Writes
# "UDP_PORT METRICS_PORT" to the file named by its argument once listening.
import socket, sys
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
http = socket.socket()
http.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
http.bind(("127.0.0.1", 0))
http.listen(4)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d %d\n" % (udp.getsockname()[1], http.getsockname()[1]))
import os
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
body = b"cefd_send_delivered_rows_total 0\ncefd_send_delivered_batches_total 0\ncefd_ring_used_bytes{lane=\"0\"} 0\n"
for _ in range(2):
    c, _ = http.accept()
    c.recv(65536)
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    c.close()
sys.exit(0)
