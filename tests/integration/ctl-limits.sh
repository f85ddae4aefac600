#!/usr/bin/env bash
# ctl-limits.sh - the control socket's bounds, from a raw client: at most
# 16 clients (the 17th gets EBUSY), an over-long request line gets E2BIG and
# a hang-up, malformed lines get EINVAL and the connection stays usable,
# pipelined requests are answered in order, and a client that stops reading
# its answers is dropped after 5 s while other clients are served
# meanwhile (the main thread never waits on a slow reader).
. "$(dirname "$0")/lib.sh"
it_init "$@"
. "$(dirname "$0")/ctl-lib.sh"

it_conf "$T/u.conf" <<EOF
[listen]
address = 127.0.0.1:$IT_PORT

[route ping]
match = regex "^PING"
action = echo
EOF
it_daemon "$T/u.conf"

cat >"$T/limits.py" <<'EOF'
import socket, sys, time
path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s
bufs = {}
def answer(s):
    """Reads one answer (records up to the "." line), keeping what follows."""
    buf = bufs.get(s, b"")
    while True:
        if buf.startswith(b".\n"):
            cut = 2
            break
        i = buf.find(b"\n.\n")
        if i >= 0:
            cut = i + 3
            break
        d = s.recv(65536)
        if not d:
            raise EOFError(buf)
        buf += d
    bufs[s] = buf[cut:]
    return buf[:cut].decode(errors="replace")
def check(cond, msg):
    if not cond:
        print("FAIL:", msg)
        sys.exit(1)

# malformed lines: an error record each, the connection stays open
s = conn()
for bad in [b"bogus\n", b"flows limit=x\n", b"\x00\xff\n", b"status extra\n"]:
    s.sendall(bad)
    a = answer(s)
    check(a.startswith("error code=EINVAL "), "malformed %r -> %r" % (bad, a))
# pipelined: three requests in one write, three answers in order
s.sendall(b"status\nstats\nroutes\n")
a1, a2, a3 = answer(s), answer(s), answer(s)
check(a1.startswith("status ") and a2.startswith("stats ") and a3.startswith("route "),
      "pipelined answers out of order")
s.close()

# over-long request: E2BIG, then the daemon hangs up
s = conn()
s.sendall(b"flows route=" + b"a" * 2000)
a = answer(s)
check(a.startswith("error code=E2BIG "), "long line -> %r" % a)
try:
    rest = s.recv(100)
except ConnectionResetError:
    rest = b""  # closed with our unread bytes still queued: a reset
check(rest == b"", "connection still open after an over-long line")
s.close()

# 16 clients at most
held = [conn() for _ in range(16)]
for c in held:  # each of them is served
    c.sendall(b"status\n")
    check(answer(c).startswith("status "), "one of 16 clients not served")
extra = conn()
a = answer(extra)
check(a.startswith("error code=EBUSY "), "17th client -> %r" % a)
for c in held:
    c.close()
extra.close()
time.sleep(0.3)
s = conn()
s.sendall(b"status\n")
check(answer(s).startswith("status "), "slots not freed after the clients left")
s.close()

# a reader that stops reading: dropped after about 5 s, others served meanwhile
slow = conn()
slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
req = b"routes\n" * 140  # under the 1024-byte line buffer per write
t0 = time.monotonic()
sent = 0
slow.setblocking(False)
while time.monotonic() - t0 < 3:
    try:
        slow.send(req)
        sent += 1
    except BlockingIOError:
        time.sleep(0.05)
    except OSError:
        break
fast = conn()
t1 = time.monotonic()
fast.sendall(b"status\n")
check(answer(fast).startswith("status "), "other client not served while one stalls")
check(time.monotonic() - t1 < 1.0, "other client waited %.2fs" % (time.monotonic() - t1))
fast.close()
# keep not reading past the 5 s stall limit, then read: what was queued,
# then the end (EOF or reset), never the rest of the pipelined answers
time.sleep(7 - (time.monotonic() - t0))
slow.setblocking(True)
slow.settimeout(15)
end = None
try:
    while True:
        d = slow.recv(1 << 20)
        if not d:
            end = time.monotonic()
            break
except (ConnectionResetError, socket.timeout) as e:
    end = time.monotonic() if isinstance(e, ConnectionResetError) else None
check(end is not None, "stalled client never dropped")
check(end - t0 < 9, "stalled client still served after %.1fs" % (end - t0))
print("ok: stalled client dropped (%d pipelined writes, closed %.1fs after the first)" %
      (sent, end - t0))
EOF

timeout 60 $IT_PY "$T/limits.py" "$T/control.sock" >"$T/limits.log" 2>&1 ||
    it_fail "$(cat "$T/limits.log")"
it_log "$(tail -n 1 "$T/limits.log")"
# the daemon is fine afterwards
ctl_eq "$(ctl_rc -s "$T/control.sock" status)" 0 "status after the abuse"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
