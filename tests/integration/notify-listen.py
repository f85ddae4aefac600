#!/usr/bin/env python3
"""A stand-in for systemd's notification socket: binds a Unix datagram socket
at PATH and prints every message it receives (one per line) until SECONDS
pass."""
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
print("bound", flush=True)
end = time.monotonic() + secs
while time.monotonic() < end:
    s.settimeout(max(0.01, end - time.monotonic()))
    try:
        msg = s.recv(4096)
    except socket.timeout:
        break
    for line in msg.decode(errors="replace").splitlines():
        print(line, flush=True)
