#!/usr/bin/python3
"""sec.py - UDP helpers for the security tests (stdlib only, every mode
bounded in count and time). Addresses are loopback only: 127.0.0.0/8 is
local, so "spoofed" sources are ordinary AnyIP sources of this namespace.

  echo      --listen A:P [--seconds S] [--discard]
            payload back unchanged (or dropped: a sink)
  bind      --as-uid U --addr A:P [--v6only 0|1]
            tries every mix of SO_REUSEADDR/SO_REUSEPORT as uid U; prints
            one line per attempt; exit 1 if any bind succeeded
  count     --to A:P --n N [--size B]      N datagrams one by one, counts
            the byte-exact answers; prints the count
  mcast     --group G --port P --other-port Q
            a second socket joins G on port Q; sends to G:P and G:Q; prints
            "daemon=<answers from P> control=<datagrams seen on Q>"
  sockopts  --pid PID --port P             options of PID's sockets on P
            (borrowed with pidfd_getfd), one JSON object per socket
  spoof     --to A:P --base 127.77.0.0 --n N --kind random|stun|echo
            [--prefixes K] [--rate R] [--settle S]
            N datagrams from N distinct AnyIP sources (IP_PKTINFO) spread
            over K /24 prefixes, collects the replies; prints JSON with
            per-prefix reply counts and byte totals
  sizes     --to A:P --sizes LIST|sweep [--timeout S]
            one datagram per size, compares SHA-256 of the answer; prints
            JSON {ok, lost, corrupt}
  stream    --to A:P --rate R --seconds S [--tag T]
            one flow of numbered datagrams; JSON {sent, answered}
"""
import argparse
import ctypes
import hashlib
import ipaddress
import json
import os
import random
import select
import socket
import struct
import sys
import time

IP_PKTINFO = 8
IP_MULTICAST_ALL = 49
SO_REUSEPORT = 15


def parse(text):
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return socket.AF_INET6, (host, int(port))
    host, _, port = text.rpartition(":")
    return socket.AF_INET, (host, int(port))


def cmd_echo(a):
    fam, addr = parse(a.listen)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind(addr)
    end = time.time() + a.seconds
    while time.time() < end:
        r, _, _ = select.select([s], [], [], 0.5)
        if not r:
            continue
        for _ in range(256):
            try:
                data, peer = s.recvfrom(70000, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            if a.discard:
                continue
            try:
                s.sendto(data, peer)
            except OSError:
                pass


def cmd_bind(a):
    fam, addr = parse(a.addr)
    bad = 0
    for ra in (0, 1):
        for rp in (0, 1):
            pid = os.fork()
            if pid == 0:
                code = 3
                try:
                    os.setgroups([])
                    os.setresgid(a.as_uid, a.as_uid, a.as_uid)
                    os.setresuid(a.as_uid, a.as_uid, a.as_uid)
                    s = socket.socket(fam, socket.SOCK_DGRAM)
                    if ra:
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    if rp:
                        s.setsockopt(socket.SOL_SOCKET, SO_REUSEPORT, 1)
                    if fam == socket.AF_INET6:
                        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, a.v6only)
                    s.bind(addr)
                    code = 0
                except OSError as e:
                    code = {98: 1, 13: 2}.get(e.errno, 3)
                os._exit(code)
            _, st = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(st)
            what = {0: "BOUND", 1: "EADDRINUSE", 2: "EACCES", 3: "other-error"}[code]
            print("uid %d bind %s v6only=%d REUSEADDR=%d REUSEPORT=%d: %s"
                  % (a.as_uid, a.addr, a.v6only, ra, rp, what))
            if code == 0:
                bad = 1
    sys.exit(bad)


def cmd_count(a):
    fam, addr = parse(a.to)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.connect(addr)
    got = 0
    end = time.time() + a.max_seconds
    for i in range(a.n):
        if time.time() > end:
            break
        msg = (b"%08d" % i) + os.urandom(max(0, a.size - 8))
        s.send(msg)
        t = time.time() + 1.0
        while time.time() < t:
            r, _, _ = select.select([s], [], [], t - time.time())
            if not r:
                break
            try:
                data = s.recv(70000)
            except ConnectionRefusedError:
                break
            if data == msg:
                got += 1
                break
    print(got)


def cmd_mcast(a):
    g = a.group
    # the other program: joins the group on its own port
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("0.0.0.0", a.other_port))
    mreq = struct.pack("4s4s", socket.inet_aton(g), socket.inet_aton("127.0.0.1"))
    other.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    tx.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    tx.bind(("127.0.0.1", 0))
    daemon = control = 0
    for i in range(a.n):
        tx.sendto(b"mcast-%d" % i, (g, a.port))
        tx.sendto(b"mcast-%d" % i, (g, a.other_port))
    end = time.time() + 1.5
    while time.time() < end:
        r, _, _ = select.select([tx, other], [], [], 0.2)
        for s in r:
            s.recv(70000)
            if s is tx:
                daemon += 1
            else:
                control += 1
    print("daemon=%d control=%d" % (daemon, control))


def pidfd_getfd(pid, fd):
    libc = ctypes.CDLL(None, use_errno=True)
    pfd = libc.syscall(434, pid, 0)  # pidfd_open
    if pfd < 0:
        raise OSError(ctypes.get_errno(), "pidfd_open")
    nfd = libc.syscall(438, pfd, fd, 0)  # pidfd_getfd
    os.close(pfd)
    if nfd < 0:
        raise OSError(ctypes.get_errno(), "pidfd_getfd")
    return nfd


def cmd_sockopts(a):
    for name in sorted(os.listdir("/proc/%d/fd" % a.pid), key=int):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (a.pid, name))
        except OSError:
            continue
        if not link.startswith("socket:"):
            continue
        try:
            fd = pidfd_getfd(a.pid, int(name))
        except OSError:
            continue
        s = socket.socket(fileno=fd)
        try:
            if s.type != socket.SOCK_DGRAM or s.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            local = s.getsockname()
            if local[1] != a.port:
                continue
            o = {"fd": int(name), "family": 4 if s.family == socket.AF_INET else 6,
                 "addr": local[0],
                 "reuseaddr": s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR),
                 "reuseport": s.getsockopt(socket.SOL_SOCKET, SO_REUSEPORT)}
            if s.family == socket.AF_INET6:
                o["v6only"] = s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
                o["mcast_all"] = s.getsockopt(socket.IPPROTO_IPV6, 29)
                try:
                    o["mcast_all_v4"] = s.getsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL)
                except OSError:
                    pass
            else:
                o["mcast_all"] = s.getsockopt(socket.IPPROTO_IP, IP_MULTICAST_ALL)
            print(json.dumps(o))
        finally:
            s.close()


def stun_request(rnd, size):
    """A Binding request of exactly size bytes (size >= 20, multiple of 4)."""
    attrs = b""
    left = size - 20
    while left >= 8:
        n = min(left - 4, 64) & ~3
        attrs += struct.pack(">HH", 0x8022, n) + b"u" * n
        left -= 4 + n
    return struct.pack(">HHI", 1, len(attrs), 0x2112A442) + rnd.randbytes(12) + attrs


def cmd_spoof(a):
    fam, dst = parse(a.to)
    base = int(ipaddress.IPv4Address(a.base))
    rnd = random.Random(a.seed)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("0.0.0.0", a.src_port))
    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    srcs = []
    per_prefix = {}
    req_bytes = rep_bytes = replies = bigger = 0
    sizes = {}
    t0 = time.time()

    def drain(timeout):
        nonlocal replies, rep_bytes, bigger
        end = time.time() + timeout
        while True:
            r, _, _ = select.select([s], [], [], max(0.0, end - time.time()))
            if not r:
                return
            data, anc, _, peer = s.recvmsg(70000, 256)
            dst_addr = None
            for lvl, typ, val in anc:
                if lvl == socket.IPPROTO_IP and typ == IP_PKTINFO:
                    dst_addr = socket.inet_ntoa(val[8:12])
            replies += 1
            rep_bytes += len(data)
            if dst_addr in sizes and len(data) > sizes[dst_addr]:
                bigger += 1
            pfx = (dst_addr or "?").rsplit(".", 1)[0]
            per_prefix[pfx] = per_prefix.get(pfx, 0) + 1

    for i in range(a.n):
        if a.prefixes:
            addr = base + (i % a.prefixes) * 256 + rnd.randrange(1, 255)
        else:
            addr = base + rnd.randrange(1, 65535)
        src = str(ipaddress.IPv4Address(addr))
        if a.kind == "random":
            msg = rnd.randbytes(rnd.randrange(1, 600))
        elif a.kind == "stun":
            msg = stun_request(rnd, rnd.choice([20, 28, 32, 36, 48, 52, 60, 100]))
        else:
            msg = a.prefix.encode() + rnd.randbytes(rnd.randrange(0, 200))
        sizes[src] = max(sizes.get(src, 0), len(msg))
        req_bytes += len(msg)
        pkt = struct.pack("=I4s4s", 0, socket.inet_aton(src), b"\0" * 4)
        s.sendmsg([msg], [(socket.IPPROTO_IP, IP_PKTINFO, pkt)], 0, dst)
        if a.rate:
            due = t0 + (i + 1) / a.rate
            if due > time.time():
                drain(due - time.time())
        elif i % 64 == 63:
            drain(0)
        if time.time() - t0 > a.max_seconds:
            break
    sent = i + 1
    drain(a.settle)
    print(json.dumps({"sent": sent, "replies": replies, "request_bytes": req_bytes,
                      "reply_bytes": rep_bytes, "replies_bigger_than_request": bigger,
                      "per_prefix": per_prefix if len(per_prefix) <= 8 else
                      {"prefixes": len(per_prefix), "max": max(per_prefix.values())},
                      "seconds": round(time.time() - t0, 2)}))


def cmd_sizes(a):
    fam, dst = parse(a.to)
    if a.sizes == "sweep":
        mx = 65507 if fam == socket.AF_INET else 65527
        sizes = sorted(set(list(range(0, 1600)) + list(range(1600, mx + 1, 331)) +
                           [0, 1, 1232, 1472, 1473, 8192, 16384, 32768, 65000, 65506, 65507,
                            mx - 1, mx]))
    else:
        sizes = [int(x) for x in a.sizes.split(",")]
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.connect(dst)
    ok = []
    lost = []
    corrupt = []
    end = time.time() + a.max_seconds
    for n in sizes:
        if time.time() > end:
            lost.append(n)
            continue
        msg = os.urandom(n)
        want = hashlib.sha256(msg).hexdigest()
        s.send(msg)
        got = None
        t = time.time() + a.timeout
        while time.time() < t:
            r, _, _ = select.select([s], [], [], t - time.time())
            if not r:
                break
            data = s.recv(70000)
            if len(data) == n:
                got = data
                break
            corrupt.append([n, len(data)])
            break
        if got is None:
            lost.append(n)
        elif hashlib.sha256(got).hexdigest() == want:
            ok.append(n)
        else:
            corrupt.append([n, n])
    print(json.dumps({"tested": len(sizes), "ok": len(ok), "lost": lost, "corrupt": corrupt,
                      "max_ok": max(ok) if ok else -1}))


def cmd_stream(a):
    fam, dst = parse(a.to)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.connect(dst)
    sent = answered = 0
    seen = set()
    t0 = time.time()
    n_total = int(a.rate * a.seconds)
    for i in range(n_total):
        s.send(b"%s%08d" % (a.tag.encode(), i))
        sent += 1
        due = t0 + (i + 1) / a.rate
        while True:
            left = due - time.time()
            r, _, _ = select.select([s], [], [], max(0.0, left))
            if r:
                try:
                    data = s.recv(70000)
                except ConnectionRefusedError:
                    continue
                if data.startswith(a.tag.encode()):
                    seen.add(data)
            if left <= 0:
                break
    end = time.time() + 1.0
    while time.time() < end:
        r, _, _ = select.select([s], [], [], 0.1)
        if r:
            try:
                data = s.recv(70000)
            except ConnectionRefusedError:
                continue
            seen.add(data)
    answered = len(seen)
    print(json.dumps({"sent": sent, "answered": answered,
                      "ratio": round(answered / sent, 5) if sent else 0}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo")
    e.add_argument("--listen", required=True)
    e.add_argument("--seconds", type=float, default=300)
    e.add_argument("--discard", action="store_true", help="receive only (a sink)")
    b = sub.add_parser("bind")
    b.add_argument("--as-uid", type=int, default=65534)
    b.add_argument("--addr", required=True)
    b.add_argument("--v6only", type=int, default=1)
    c = sub.add_parser("count")
    c.add_argument("--to", required=True)
    c.add_argument("--n", type=int, default=1000)
    c.add_argument("--size", type=int, default=16)
    c.add_argument("--max-seconds", type=float, default=60)
    m = sub.add_parser("mcast")
    m.add_argument("--group", default="239.1.2.3")
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--other-port", type=int, required=True)
    m.add_argument("--n", type=int, default=20)
    o = sub.add_parser("sockopts")
    o.add_argument("--pid", type=int, required=True)
    o.add_argument("--port", type=int, required=True)
    sp = sub.add_parser("spoof")
    sp.add_argument("--to", required=True)
    sp.add_argument("--base", default="127.77.0.0")
    sp.add_argument("--n", type=int, default=10000)
    sp.add_argument("--kind", choices=["random", "stun", "echo"], default="random")
    sp.add_argument("--prefix", default="ECHO")
    sp.add_argument("--prefixes", type=int, default=0)
    sp.add_argument("--rate", type=float, default=0)
    sp.add_argument("--settle", type=float, default=1.0)
    sp.add_argument("--src-port", type=int, default=40000)
    sp.add_argument("--seed", type=int, default=5)
    sp.add_argument("--max-seconds", type=float, default=60)
    sz = sub.add_parser("sizes")
    sz.add_argument("--to", required=True)
    sz.add_argument("--sizes", default="sweep")
    sz.add_argument("--timeout", type=float, default=1.0)
    sz.add_argument("--max-seconds", type=float, default=120)
    st = sub.add_parser("stream")
    st.add_argument("--to", required=True)
    st.add_argument("--rate", type=float, default=200)
    st.add_argument("--seconds", type=float, default=5)
    st.add_argument("--tag", default="LEGIT")
    a = p.parse_args()
    globals()["cmd_" + a.cmd](a)


if __name__ == "__main__":
    main()
