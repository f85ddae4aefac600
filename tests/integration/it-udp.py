#!/usr/bin/python3
"""it-udp.py - small UDP tools for the integration tests (stdlib only).

Every mode is bounded: servers stop after --max-seconds, clients after their
own timeouts, so a broken daemon makes a test fail instead of hang.

  echo   --listen ADDR:PORT [--tag TAG] [--from-file FILE]
         answers every datagram with "TAG|from=PEER|" + payload (TAG empty:
         the payload alone); --from-file appends each peer to FILE.
  proxy  --listen ADDR:PORT --log FILE
         PROXY v2 receiver: decodes the header (haproxy proxy-protocol.txt
         2.2), answers "src=ADDR:PORT dst=ADDR:PORT|" + payload, logs the same.
  ask    --to ADDR:PORT [--bind ADDR:PORT] (--data TEXT | --hex HEX)
         [--timeout S] [--tries N]
         sends one datagram, prints the reply (text, or hex with --print-hex);
         exit 1 when nothing comes back.
  stream --to ADDR:PORT [--bind ADDR:PORT] --seconds S --rate N
         one flow (one source port) sending numbered datagrams at N/s to an
         echo backend; prints a JSON summary: sent, answered, lost sequence
         numbers after the first answer, the set of backend tags seen, the
         sources the backends saw (froms), the addresses answers came from
         (srcs) and the longest pause between two answers (maxgap_ms).
  burst  --to ADDR:PORT --flows N [--timeout S] [--prefix TEXT] [--rate N]
         N flows (N source sockets), one datagram each (TEXT + "flow=I");
         prints how many got an answer (--check: their own payload back).
"""
import argparse
import json
import select
import socket
import struct
import sys
import time

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def parse_addr(text):
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return socket.AF_INET6, (host, int(port))
    host, _, port = text.rpartition(":")
    return socket.AF_INET, (host, int(port))


def fmt(addr):
    if ":" in addr[0]:
        return "[%s]:%d" % (addr[0], addr[1])
    return "%s:%d" % (addr[0], addr[1])


def sock_for(fam, bind=None):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    if bind:
        s.bind(parse_addr(bind)[1])
    return s


def serve(args, answer):
    fam, addr = parse_addr(args.listen)
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind(addr)
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], 0.5)
        if not r:
            continue
        data, peer = s.recvfrom(65535)
        out = answer(data, peer)
        if out is not None:
            s.sendto(out, peer)


def cmd_echo(args):
    tag = args.tag.encode()
    log = open(args.from_file, "a", buffering=1) if args.from_file else None

    def answer(data, peer):
        if log:
            log.write(fmt(peer) + "\n")
        if not tag:
            return data
        return tag + b"|from=" + fmt(peer).encode() + b"|" + data

    serve(args, answer)


def decode_v2(data):
    """Returns (header_len, src, dst) or raises ValueError."""
    if len(data) < 16 or data[:12] != SIG:
        raise ValueError("no PROXY v2 signature")
    vc, fam, ln = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    if vc >> 4 != 2 or len(data) < 16 + ln:
        raise ValueError("bad version or length")
    body = data[16:16 + ln]
    if vc & 0xF == 0:
        return 16 + ln, "LOCAL", "LOCAL"
    if fam == 0x12 and ln >= 12:
        src = (socket.inet_ntop(socket.AF_INET, body[0:4]), struct.unpack("!H", body[8:10])[0])
        dst = (socket.inet_ntop(socket.AF_INET, body[4:8]), struct.unpack("!H", body[10:12])[0])
    elif fam == 0x22 and ln >= 36:
        src = (socket.inet_ntop(socket.AF_INET6, body[0:16]), struct.unpack("!H", body[32:34])[0])
        dst = (socket.inet_ntop(socket.AF_INET6, body[16:32]),
               struct.unpack("!H", body[34:36])[0])
    else:
        raise ValueError("unsupported family 0x%02x" % fam)
    return 16 + ln, fmt(src), fmt(dst)


def cmd_proxy(args):
    log = open(args.log, "a", buffering=1)

    def answer(data, peer):
        try:
            hl, src, dst = decode_v2(data)
        except ValueError as e:
            log.write("bad header from %s: %s\n" % (fmt(peer), e))
            return b"bad-header|" + data
        line = "src=%s dst=%s" % (src, dst)
        log.write(line + " payload=%r\n" % data[hl:])
        return line.encode() + b"|" + data[hl:]

    serve(args, answer)


def cmd_ask(args):
    fam, to = parse_addr(args.to)
    s = sock_for(fam, args.bind)
    payload = bytes.fromhex(args.hex) if args.hex is not None else args.data.encode()
    for _ in range(args.tries):
        s.sendto(payload, to)
        r, _, _ = select.select([s], [], [], args.timeout)
        if r:
            data, peer = s.recvfrom(65535)
            if args.print_hex:
                print(data.hex())
            else:
                sys.stdout.write(data.decode("utf-8", "replace") + "\n")
            if args.show_peer:
                print("peer=" + fmt(peer))
            return 0
    print("no answer from %s" % args.to, file=sys.stderr)
    return 1


def cmd_stream(args):
    fam, to = parse_addr(args.to)
    s = sock_for(fam, args.bind)
    s.setblocking(False)
    gap = 1.0 / args.rate
    start = time.monotonic()
    end = start + args.seconds
    nxt = start
    seq = 0
    answered = set()
    tags = {}
    froms = {}
    srcs = {}
    maxgap = 0.0
    last_rx = None
    first = None
    while True:
        now = time.monotonic()
        if now >= end + args.drain:
            break
        if now < end and now >= nxt:
            s.sendto(b"seq=%d" % seq, to)
            seq += 1
            nxt += gap
        wait = max(0.0, min(nxt, end + args.drain) - time.monotonic())
        r, _, _ = select.select([s], [], [], wait if now < end else 0.05)
        if not r:
            continue
        while True:
            try:
                data, src = s.recvfrom(65535)
            except BlockingIOError:
                break
            t = time.monotonic()
            if last_rx is not None and t - last_rx > maxgap:
                maxgap = t - last_rx
            last_rx = t
            srcs[fmt(src)] = srcs.get(fmt(src), 0) + 1
            parts = data.split(b"|")
            tag = parts[0].decode() if len(parts) >= 3 else ""
            if len(parts) >= 3 and parts[1].startswith(b"from="):
                f = parts[1][5:].decode()
                froms[f] = froms.get(f, 0) + 1
            body = parts[-1]
            if body.startswith(b"seq="):
                n = int(body[4:])
                answered.add(n)
                tags[tag] = tags.get(tag, 0) + 1
                if first is None or n < first:
                    first = n
    lost = [n for n in range(first if first is not None else 0, seq) if n not in answered]
    print(json.dumps({"sent": seq, "answered": len(answered), "first": first,
                      "lost": lost[:50], "nlost": len(lost), "tags": tags,
                      "froms": froms, "srcs": srcs, "maxgap_ms": round(maxgap * 1000, 1),
                      "local": fmt(s.getsockname())}))
    return 0


def cmd_burst(args):
    fam, to = parse_addr(args.to)
    socks = {}
    payload = {}
    for i in range(args.flows):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind(("::" if fam == socket.AF_INET6 else "0.0.0.0", 0))
        payload[s.fileno()] = args.prefix.encode() + b"flow=%d" % i
        s.sendto(payload[s.fileno()], to)
        socks[s.fileno()] = s
        if args.rate:
            time.sleep(1.0 / args.rate)
    # poll, not select: more than FD_SETSIZE sockets may be open
    pl = select.poll()
    for fd in socks:
        pl.register(fd, select.POLLIN)
    got, bad = set(), 0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline and len(got) < len(socks):
        for fd, _ in pl.poll(200):
            data = socks[fd].recv(65535)
            pl.unregister(fd)
            # --check: an echo answer must carry this flow's own payload
            # (the echo may put a tag in front), not another flow's
            if args.check and not data.endswith(b"|" + payload[fd]) and data != payload[fd]:
                bad += 1
                continue
            got.add(fd)
            if args.confirm:
                # a second datagram after the answer proves the flow
                # (return routability): udpmuxd no longer evicts it
                socks[fd].sendto(payload[fd], to)
    print(len(got))
    if args.check:
        print("wrong answers: %d" % bad, file=sys.stderr)
    for s in socks.values():
        s.close()
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("echo")
    e.add_argument("--listen", required=True)
    e.add_argument("--tag", default="")
    e.add_argument("--from-file")
    e.add_argument("--max-seconds", type=float, default=120)
    x = sub.add_parser("proxy")
    x.add_argument("--listen", required=True)
    x.add_argument("--log", required=True)
    x.add_argument("--max-seconds", type=float, default=120)
    a = sub.add_parser("ask")
    a.add_argument("--to", required=True)
    a.add_argument("--bind")
    a.add_argument("--data", default="")
    a.add_argument("--hex")
    a.add_argument("--timeout", type=float, default=2.0)
    a.add_argument("--tries", type=int, default=1)
    a.add_argument("--print-hex", action="store_true")
    a.add_argument("--show-peer", action="store_true")
    st = sub.add_parser("stream")
    st.add_argument("--to", required=True)
    st.add_argument("--bind")
    st.add_argument("--seconds", type=float, default=5)
    st.add_argument("--rate", type=float, default=100)
    st.add_argument("--drain", type=float, default=1.0)
    b = sub.add_parser("burst")
    b.add_argument("--to", required=True)
    b.add_argument("--flows", type=int, required=True)
    b.add_argument("--timeout", type=float, default=3.0)
    b.add_argument("--prefix", default="")
    b.add_argument("--check", action="store_true")
    b.add_argument("--confirm", action="store_true", help="send again after the answer")
    b.add_argument("--rate", type=float, default=0, help="flows per second (0: flat out)")
    args = p.parse_args()
    return {"echo": cmd_echo, "proxy": cmd_proxy, "ask": cmd_ask, "stream": cmd_stream,
            "burst": cmd_burst}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
