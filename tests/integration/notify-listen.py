#!/usr/bin/env python3
"""A stand-in for systemd's notification socket: binds a Unix datagram socket
at PATH and prints every message it receives (one per line) until SECONDS
pass. With a third argument "pids", each line starts with "pid=N " (the
sender, from SO_PASSCRED, which is how systemd tells the main process)."""
import os
import socket
import sys
import time

path, secs = sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s.bind(path)
pids = len(sys.argv) > 3 and sys.argv[3] == "pids"
if pids:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
print("bound", flush=True)
end = time.monotonic() + secs
while time.monotonic() < end:
    s.settimeout(max(0.01, end - time.monotonic()))
    try:
        msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
    except socket.timeout:
        break
    who = ""
    for level, kind, data in anc:
        if pids and level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            who = "pid=%d " % int.from_bytes(data[0:4], sys.byteorder)
    for line in msg.decode(errors="replace").splitlines():
        print(who + line, flush=True)
