#!/usr/bin/env python3
"""Loopback HTTP sink for the peer benchmark (bench/peers/run).

Accepts POSTs on any path and appends each body to --out, so every JSON row ends up on a line of
its own: syslog-ng's http() sends `[row,\nrow,\n...row]`, rsyslog's omelasticsearch sends the
Elasticsearch bulk shape (`{"index":...}\nrow\n...`). cefd-loadgen --verify then finds each row's
`cefdseq=<run>-<n>` stamp on its line. The sink answers 200 with an Elasticsearch-style bulk
reply (`"errors":false`), which both peers accept, and 200 to GETs (omelasticsearch's health
check). It checks that the first body, and every 64th after it, parses as JSON rows (a bad body
is counted in the stats file and answered 400), and counts the rest by lines, so that the sink
stays cheap next to the collector it measures. Loopback only.
"""
import argparse
import os
import signal
import http.server
import json
import socketserver
import threading


class Sink:
    def __init__(self, out_path):
        self.out = open(out_path, "ab", buffering=0)
        self.lock = threading.Lock()
        self.requests = 0
        self.bad = 0

    def accept(self, body: bytes) -> bool:
        with self.lock:
            n = self.requests
            self.requests += 1
        if n % 64 == 0 and not well_formed(body):
            with self.lock:
                self.bad += 1
            return False
        with self.lock:
            self.out.write(body if body.endswith(b"\n") else body + b"\n")
        return True


def well_formed(body: bytes) -> bool:
    """A JSON array of objects, or bulk lines whose every line is a JSON object."""
    try:
        text = body.decode("utf-8")
        if text.lstrip().startswith("["):
            rows = json.loads(text)
            return isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
        return all(isinstance(json.loads(line), dict) for line in text.splitlines() if line.strip())
    except (UnicodeDecodeError, ValueError):
        return False


def make_handler(sink):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the collectors' libcurl expects

        def log_message(self, *args):  # one line per request would cost more than the rows
            pass

        def reply(self, status, payload: bytes):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):
            self.reply(200, b'{"status":"green"}')

        def do_HEAD(self):
            self.reply(200, b"")

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if sink.accept(body):
                self.reply(200, b'{"took":1,"errors":false,"items":[]}')
            else:
                self.reply(400, b'{"error":"not JSON rows"}')

        do_PUT = do_POST

    return Handler


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--ready-file", required=True, help="written with the port once listening")
    parser.add_argument("--stats-file", help="written at exit: requests and bad bodies")
    args = parser.parse_args()
    sink = Sink(args.out)
    server = Server(("127.0.0.1", 0), make_handler(sink))
    with open(args.ready_file + ".tmp", "w") as ready:
        ready.write(f"{server.server_address[1]}\n")
    os.replace(args.ready_file + ".tmp", args.ready_file)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    if args.stats_file:
        with open(args.stats_file, "w") as stats:
            stats.write(json.dumps({"requests": sink.requests, "bad_bodies": sink.bad}) + "\n")


if __name__ == "__main__":
    main()
