#!/usr/bin/python3
"""gen-corpus.py - writes the seed corpora of fuzz-flow, fuzz-proxy and
fuzz-stun (fuzz/corpus/{flow,proxy,stun}/). Deterministic (fixed seed), so
rerunning it reproduces the committed files; libFuzzer adds its own finds
next to them. Usage: fuzz/gen-corpus.py [OUTDIR]  (default fuzz/corpus)."""
import os
import random
import struct
import sys
import zlib

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
rnd = random.Random(8)


def write(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# fuzz-flow: [capacity byte] then ops (see fuzz-flow.c: op % 10)
INS, LOOK, TOUCH, REM, ADV, EXP, SETC, ROAM, RLOOK, REKEY = range(10)
write("flow", "empty", b"")
write("flow", "cap1-insert", bytes([0, INS, 1, 0, INS, 2, 0]))
# fill a table of 4 with established flows (odd classes), then a new one
# must fail: established flows are never evicted
ops = [3]
for k in range(4):
    ops += [INS, k, 1]
ops += [INS, 9, 0, LOOK, 9, LOOK, 0]
write("flow", "full-established", bytes(ops))
# mix of unanswered and established, then evictions
ops = [3]
for k in range(4):
    ops += [INS, k, k % 2 * 1 + 2 * (k % 3)]
    ops += [ADV, 1, 0]
for k in range(10, 20):
    ops += [INS, k, 0, ADV, 2, 0]
write("flow", "evict-oldest", bytes(ops))
# touch to established, expiry, next-expiry
ops = [7, INS, 1, 0, INS, 2, 0, TOUCH, 1, 1, ADV, 40, 0, EXP, 1, 0, EXP, 1, 3, ADV, 63, 255,
       ADV, 63, 255, EXP, 0, 0]
write("flow", "expire", bytes(ops))
# roaming keys and re-keys
ops = [5, INS, 1, 1, INS, 2, 1, ROAM, 1, 3, ROAM, 2, 3, RLOOK, 3, REKEY, 2, 7, REKEY, 7, 1,
       RLOOK, 3, REM, 7, RLOOK, 3]
write("flow", "roam-rekey", bytes(ops))
# class changes while flows are in them
ops = [2, INS, 1, 0, INS, 2, 1, SETC, 1, 0x85, SETC, 0, 0x00, INS, 3, 0, ADV, 200, 0, EXP, 0, 0]
write("flow", "set-class", bytes(ops))
for i in range(12):
    n = rnd.randrange(16, 400)
    write("flow", "random-%02d" % i, bytes(rnd.randrange(256) for _ in range(n)))

# fuzz-proxy: raw bytes are decoded as a header; then [kind][16][2] x2
SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(cmd, fam, body):
    return SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body


write("proxy", "v4", v2(1, 0x12, bytes([192, 0, 2, 1, 127, 0, 0, 1]) + struct.pack(">HH", 5000, 53)))
write("proxy", "v6", v2(1, 0x22, bytes(range(16)) + bytes(15) + b"\x01" + struct.pack(">HH", 1, 2)))
write("proxy", "local", v2(0, 0, b""))
write("proxy", "tlv-tail", v2(1, 0x12, bytes(12) + b"\x04\x00\x01\x00"))
write("proxy", "bad-version", SIG + b"\x31\x12\x00\x0c" + bytes(12))
write("proxy", "short-len", v2(1, 0x22, bytes(20)))
write("proxy", "truncated", v2(1, 0x12, bytes(12))[:20])
for kinds in [(0, 0), (1, 1), (2, 2), (0, 2), (2, 0), (1, 0), (3, 3), (2, 1)]:
    rec = b""
    for k in kinds:
        rec += bytes([k]) + bytes(rnd.randrange(256) for _ in range(16)) + bytes([0x13, 0x88])
    write("proxy", "pair-%d%d" % kinds, rec)

# fuzz-stun: [peer kind][16 address bytes][2 port bytes][request]
MAGIC = 0x2112A442


def stun_req(cookie=MAGIC, attrs=b"", fp=False, typ=1):
    tid = bytes(rnd.randrange(256) for _ in range(12))
    body = attrs
    if fp:
        hdr = struct.pack(">HHI", typ, len(body) + 8, cookie) + tid
        crc = (zlib.crc32(hdr + body) ^ 0x5354554E) & 0xFFFFFFFF
        body += struct.pack(">HHI", 0x8028, 4, crc)
    return struct.pack(">HHI", typ, len(body), cookie) + tid + body


def peer(kind, addr, port):
    return bytes([kind]) + addr.ljust(16, b"\0") + struct.pack(">H", port)


v4 = bytes([198, 51, 100, 7])
v6 = bytes([0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [1])
software = struct.pack(">HH", 0x8022, 8) + b"udpmux\0\0"
write("stun", "binding-v4", peer(0, v4, 40000) + stun_req())
write("stun", "binding-v4-fp", peer(0, v4, 40000) + stun_req(fp=True, attrs=software))
write("stun", "binding-v6-fp", peer(1, v6, 3478) + stun_req(fp=True, attrs=software + software))
write("stun", "binding-mapped", peer(3, v4, 1) + stun_req(attrs=software * 3))
write("stun", "rfc3489-v4", peer(0, v4, 5060) + stun_req(cookie=0x01020304, attrs=software))
write("stun", "rfc3489-v6", peer(1, v6, 5060) + stun_req(cookie=0x01020304, attrs=software))
write("stun", "too-small-v6", peer(1, v6, 9) + stun_req())
write("stun", "not-binding", peer(0, v4, 9) + stun_req(typ=0x0101))
write("stun", "len-mismatch", peer(0, v4, 9) + stun_req(attrs=software)[:-4])
write("stun", "bad-attr-len", peer(0, v4, 9) + stun_req(attrs=struct.pack(">HH", 0x8022, 200) + bytes(4)))
write("stun", "header-only", peer(0, v4, 9) + stun_req()[:19])
write("stun", "empty", peer(0, v4, 9))
