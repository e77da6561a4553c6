#!/usr/bin/env python3
"""Writes the seed corpora in tests/fuzz/corpus/<target>/ from tests/data (run once; the files
are committed). Each seed is one small file named after its content's hash."""
import hashlib
import os
import struct

root = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(root, "..", "data")
files = ["synthetic-darktrace-cef.log", "RadiflowIsid_RawLogs.txt", "WithSecureViaConnectorSampleData.txt"]

lines = []
for name in files:
    with open(os.path.join(data, name), "rb") as f:
        for line in f.read().split(b"\n"):
            line = line.rstrip(b"\r")
            if line and not line.startswith(b"#"):
                lines.append(line)

extra = [
    b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'su root' failed for lonvick on /dev/pts/8",
    b'<165>1 2003-10-11T22:14:15.003000+01:00 host app 1234 ID47 [exampleSDID@32473 iut="3" eventSource="App\\"x\\]"][b@1 c="d"] text',
    b"<13>Mar  4 09:15:02 host sshd[22]: Accepted publickey for root",
    b"<13>Mar 14 2024 09:15:02.123 host kernel: eth0 up",
    b"<190>2024-03-14T09:15:02+01:00 host CEF: 0|V|P|1|2|N|3|a=b",
    b"Mar 14 09:15:02 host CEF:0|V\\|x|P|1|2|N|3|msg=caf\xc3 dpt=abc start=yesterday end=1710409890000 a\\=b",
    b"<134>CEF:1|Vendor|Product|1.0|100|Name|High|cs1=x cs1Label=y cn1=-9223372036854775808 cfp1=1e307 start=Mar 14 2024 09:15:02.123 CEST",
    b"CEF:0|short",
    b"<13>Oct 30, 2021 10:00:00 relay CEF:0|Kaspersky|KSC|13|1|N|5|rt=Oct 30 2021 10:00:00 PDT",
    b"<13>Mar 14 09:15:02 host app[x]: not a pid",
]
lines += extra
# The syslog envelope corpus: its message lines only (not comments or indented expectations).
with open(os.path.join(data, "syslog-envelope-corpus.txt"), "rb") as f:
    lines += [l for l in f.read().split(b"\n") if l and not l.startswith((b"#", b" "))]

def write(target, payloads):
    out = os.path.join(root, "corpus", target)
    os.makedirs(out, exist_ok=True)
    for p in payloads:
        name = hashlib.sha1(p).hexdigest()[:16]
        with open(os.path.join(out, name), "wb") as f:
            f.write(p)

write("syslog", lines)
write("cef", [l[l.find(b"CEF:"):] if b"CEF:" in l else l for l in lines])
seconds = struct.pack("<I", 1710409920 - 946684800)
parser = []
for i, l in enumerate(lines):
    control = (i % 2) | (((i // 2) % 4) << 2) | (2 if i % 7 == 0 else 0) | (16 if i % 11 == 0 else 0)
    parser.append(bytes([control]) + seconds + l)
write("parser", parser)
framer = []
for i in range(0, len(lines), 6):
    group = lines[i:i + 6]
    framer.append(bytes([0x80, i & 0xFF]) + b"\n".join(group) + b"\n")
    framer.append(bytes([0x80, (i + 1) & 0xFF]) + b"".join(b"%d %s" % (len(g), g) for g in group))
    framer.append(bytes([40, i & 0xFF]) + b"\r\n".join(g[:60] for g in group))
write("tcp_framer", framer)
