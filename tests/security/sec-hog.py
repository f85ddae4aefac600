#!/usr/bin/env python3
"""sec-hog.py - a hostile local user holding udpmuxd's local sockets
(sec-sockets.sh runs it as uids that udpmuxd does not trust; it is copied
to the test's directory first, as the tree may be unreadable to them).

  attach-claim SOCK ROUTE N HOLD_S    N attach connections that claim ROUTE
  attach-silent SOCK SECS MAX         up to MAX silent attach connections,
                                      reconnected as they go, for SECS
  control-trickle SOCK N SECS         N control connections sending one
                                      byte a second, never a whole line
  metrics-slow PORT ADDRS N SECS      N half-sent HTTP requests from each
                                      source address, one byte a second

Each prints one line of key=value results (and "ready" lines as it goes).
"""
import errno
import select
import socket
import sys
import time

ATT_HELLO, ATT_OK, ATT_ERR, ATT_VERSION = ord('H'), ord('O'), ord('E'), 1


def att_msg_code(m):
    """(type, code) of an attach reply."""
    if len(m) < 4:
        return None, None
    return m[0], m[2] << 8 | m[3]


def attach_claim(path, route, n, hold):
    conns, claimed, codes = [], 0, []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            s.connect(path)
            r = route.encode()
            s.send(bytes([ATT_HELLO, ATT_VERSION, len(r) >> 8, len(r) & 0xFF]) + r)
            s.settimeout(3)
            t, code = att_msg_code(s.recv(512))
        except OSError as e:
            # refused at once: the daemon's answer is queued behind the
            # reset, as udpmux_attach() reads it
            # (the first read may report the reset itself)
            code = e.errno
            for _ in range(3):
                try:
                    t, c = att_msg_code(s.recv(512, socket.MSG_DONTWAIT))
                    code = c if t == ATT_ERR else code
                    break
                except ConnectionResetError:
                    continue
                except OSError:
                    break
            codes.append(errno.errorcode.get(code, str(code)))
            s.close()
            continue
        if t == ATT_OK:
            claimed += 1
            conns.append(s)
        else:
            codes.append(errno.errorcode.get(code, str(code)))
            s.close()
    print(f"claimed={claimed} refused={len(codes)} codes={','.join(codes) or '-'}", flush=True)
    time.sleep(hold)
    alive = 0
    for s in conns:
        s.setblocking(False)
        try:
            alive += s.recv(512) != b""
        except BlockingIOError:
            alive += 1
        except OSError:
            pass
    print(f"claims_alive={alive}", flush=True)


def attach_silent(path, secs, maxconn):
    """Keeps up to maxconn connections that never say hello."""
    live = {}  # socket -> connect time
    refused = timeouts = closed = connected = 0
    maxlife = 0.0
    codes = set()
    end = time.monotonic() + secs
    printed = False
    while time.monotonic() < end:
        while len(live) < maxconn:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_NONBLOCK)
            try:
                s.connect(path)
            except OSError:
                s.close()
                break
            live[s] = time.monotonic()
            connected += 1
        if not printed and connected >= maxconn:
            print("ready", flush=True)
            printed = True
        # a few hundred attempts a second per uid: pressure enough, without
        # eating the CPU the daemon and the other tests need
        r, _, _ = select.select(list(live), [], [], 0.05)
        time.sleep(0.02)
        now = time.monotonic()
        for s in r:
            try:
                m = s.recv(512)
            except OSError:
                m = b""
            t, code = att_msg_code(m)
            if t == ATT_ERR and code == errno.ETIMEDOUT:
                timeouts += 1
                maxlife = max(maxlife, now - live[s])
            elif t == ATT_ERR:
                refused += 1
                codes.add(errno.errorcode.get(code, str(code)))
            else:
                closed += 1
                maxlife = max(maxlife, now - live[s])
            s.close()
            del live[s]
    now = time.monotonic()
    oldest = max((now - t for t in live.values()), default=0.0)
    print(
        f"connected={connected} refused={refused} codes={','.join(sorted(codes)) or '-'} "
        f"timeouts={timeouts} closed={closed} maxlife={maxlife:.2f} open={len(live)} "
        f"oldest={oldest:.2f}",
        flush=True,
    )


def trickle(conns, secs, first, nextbyte):
    """Sends one byte a second on every connection; returns how long each
    lived (None: still open at the end)."""
    t0 = time.monotonic()
    life = [None] * len(conns)
    for i, s in enumerate(conns):
        s.setblocking(False)
        try:
            s.send(first)
        except OSError:
            life[i] = 0.0
    print("ready", flush=True)
    while time.monotonic() - t0 < secs:
        time.sleep(1)
        now = time.monotonic()
        for i, s in enumerate(conns):
            if life[i] is not None:
                continue
            gone = False
            try:
                while True:
                    m = s.recv(4096)
                    if not m:
                        gone = True
                        break
            except BlockingIOError:
                pass
            except OSError:
                gone = True
            if not gone:
                try:
                    s.send(nextbyte)
                except OSError:
                    gone = True
            if gone:
                life[i] = now - t0
    return life


def summary(life):
    closed = [x for x in life if x is not None]
    return (
        f"closed={len(closed)} open={len(life) - len(closed)} "
        f"maxlife={max(closed, default=0.0):.1f}"
    )


def control_trickle(path, n, secs):
    conns = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        conns.append(s)
    print(summary(trickle(conns, secs, b"s", b"t")), flush=True)


def metrics_slow(port, addrs, n, secs):
    conns, refused = [], 0
    for a in addrs.split(","):
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((a, 0))
            try:
                s.settimeout(2)
                s.connect(("127.0.0.1", port))
            except OSError:
                refused += 1
                s.close()
                continue
            conns.append(s)
    life = trickle(conns, secs, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: ", b"a")
    print(f"opened={len(conns)} refused={refused} {summary(life)}", flush=True)


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "attach-claim":
        attach_claim(args[0], args[1], int(args[2]), float(args[3]))
    elif mode == "attach-silent":
        attach_silent(args[0], float(args[1]), int(args[2]))
    elif mode == "control-trickle":
        control_trickle(args[0], int(args[1]), float(args[2]))
    elif mode == "metrics-slow":
        metrics_slow(int(args[0]), args[1], int(args[2]), float(args[3]))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
