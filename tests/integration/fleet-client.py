#!/usr/bin/python3
"""fleet-client.py - the clients of it-fleet-ecmp.sh (stdlib + the openssl
command for the QUIC-LB connection ids). Bounded: one round waits at most
--timeout seconds per try and tries --tries times.

  round --to ADDR:PORT --clients N [--quic-key HEX --quic-sids S1,S2]
        [--migrate K]
      N client tuples (address 10.20.0.(1 + i // 10), port 20000 + i % 10
      ... ), one datagram each to ADDR:PORT, all at once, answers collected;
      prints a JSON map "addr:port" -> [backend tag, instance address].
      With --quic-key: short header QUIC datagrams instead, client i
      carrying a QUIC-LB CID (config id 1, 4-byte server id, 12-byte nonce,
      single-pass AES-128-ECB) of server id S[i % len(S)]; --migrate K
      shifts every client's port by K (a migrated client: a new 4-tuple).
"""
import argparse
import json
import select
import socket
import subprocess
import sys
import time


def tuples(n, migrate=0):
    return [("10.20.0.%d" % (1 + i // 10), 20000 + i % 10 + migrate) for i in range(n)]


def aes_ecb(key_hex, block):
    out = subprocess.run(["openssl", "enc", "-aes-128-ecb", "-nopad", "-K", key_hex],
                         input=block, capture_output=True, check=True, timeout=10).stdout
    assert len(out) == 16
    return out


def quic_short(key_hex, sid_hex, i):
    # first octet: config id 1 (top 3 bits), CID length - 1 = 16 (low 5)
    sid = bytes.fromhex(sid_hex)
    nonce = i.to_bytes(12, "big")
    cid = bytes([(1 << 5) | 16]) + aes_ecb(key_hex, sid + nonce)
    # 0x43: short header, fixed bit; then packet number and a payload long
    # enough for header protection's sample
    return bytes([0x43]) + cid + bytes(range(32))


def cmd_round(a):
    host, _, port = a.to.rpartition(":")
    dst = (host, int(port))
    sids = a.quic_sids.split(",") if a.quic_sids else []
    socks, want = {}, {}
    for i, t in enumerate(tuples(a.clients, a.migrate)):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(t)
        s.setblocking(False)
        socks[s] = "%s:%d" % t
        want[s] = quic_short(a.quic_key, sids[i % len(sids)], i) if sids else b"hello %d" % i
    got = {}
    for _ in range(a.tries):
        for s in socks:
            if socks[s] not in got:
                try:
                    s.sendto(want[s], dst)
                except OSError:
                    pass
        end = time.monotonic() + a.timeout
        while len(got) < len(socks) and time.monotonic() < end:
            r, _, _ = select.select(list(socks), [], [], 0.1)
            for s in r:
                try:
                    data, _ = s.recvfrom(65535)
                except OSError:
                    continue
                parts = data.split(b"|", 2)
                if len(parts) < 2:
                    continue
                inst = parts[1].decode(errors="replace").removeprefix("from=").rsplit(":", 1)[0]
                got[socks[s]] = [parts[0].decode(errors="replace"), inst]
        if len(got) == len(socks):
            break
    for s in socks:
        s.close()
    json.dump(got, sys.stdout, sort_keys=True)
    print()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("round")
    r.add_argument("--to", required=True)
    r.add_argument("--clients", type=int, default=200)
    r.add_argument("--quic-key")
    r.add_argument("--quic-sids")
    r.add_argument("--migrate", type=int, default=0)
    r.add_argument("--timeout", type=float, default=2.0)
    r.add_argument("--tries", type=int, default=3)
    a = p.parse_args()
    cmd_round(a)


if __name__ == "__main__":
    main()
