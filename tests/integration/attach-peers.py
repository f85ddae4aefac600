#!/usr/bin/env python3
"""Peers for the attach test: for each TAG, one socket sends "TAG REQ n" to
the shared port and expects "TAG RSP n" back from it (the attached program
acting as server), and another answers "TAG ASK n" with "ANS TAG n" (the
program acting as client; the answer matches no route and must come back to
the program through the flow its own send created).

usage: attach-peers.py MUX_HOST:PORT COUNT SECONDS DELAY TAG=ASKPORT [TAG=ASKPORT...]
The sockets are bound at once; requests start after DELAY seconds (time for
the programs to attach).
Exit 0 when every tag got COUNT responses, all from the shared port, and no
response carried another tag.
"""
import select
import socket
import sys
import time


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    mux = (host, int(port))
    count, secs, delay = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
    tags = {}
    for spec in sys.argv[5:]:
        tag, askport = spec.split("=")
        req = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        req.bind(("127.0.0.1", 0))
        ans = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        ans.bind(("127.0.0.1", int(askport)))
        tags[tag] = {"req": req, "ans": ans, "sent": 0, "got": 0, "asked": 0, "bad": 0}
    end = time.monotonic() + secs
    next_send = time.monotonic() + delay
    print("bound", flush=True)
    socks = {}
    for tag, t in tags.items():
        socks[t["req"]] = (tag, "req")
        socks[t["ans"]] = (tag, "ans")
    while time.monotonic() < end:
        if all(t["got"] >= count and t["asked"] >= count for t in tags.values()):
            break
        now = time.monotonic()
        if now >= next_send:
            for tag, t in tags.items():
                if t["sent"] < count:
                    t["req"].sendto(f"{tag} REQ {t['sent']}".encode(), mux)
                    t["sent"] += 1
            next_send = now + 0.002
        r, _, _ = select.select(list(socks), [], [], 0.005)
        for s in r:
            data, src = s.recvfrom(2048)
            tag, kind = socks[s]
            t = tags[tag]
            text = data.decode(errors="replace")
            if src != mux:
                t["bad"] += 1
                print(f"{tag}: datagram from {src}, not the shared port", file=sys.stderr)
                continue
            if kind == "req":
                if text.startswith(f"{tag} RSP "):
                    t["got"] += 1
                else:
                    t["bad"] += 1
                    print(f"{tag}: wrong response {text[:40]!r}", file=sys.stderr)
            else:
                if text.startswith(f"{tag} ASK "):
                    s.sendto(f"ANS {tag} {text.split()[-1]}".encode(), src)
                    t["asked"] += 1
                else:
                    t["bad"] += 1
                    print(f"{tag}: wrong ask {text[:40]!r}", file=sys.stderr)
    ok = True
    for tag, t in tags.items():
        print(f"{tag}: sent={t['sent']} responses={t['got']} asks={t['asked']} bad={t['bad']}")
        ok &= t["got"] >= count and t["asked"] >= count and t["bad"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
