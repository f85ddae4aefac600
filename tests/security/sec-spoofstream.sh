#!/bin/bash
# sec-spoofstream.sh - #12: a slow spoofed stream does not lock new clients
# out. Sources spread over many /24s of an AnyIP prefix (so no per-prefix
# limit bites) each send one datagram and never another: the backend
# answers (as backends answer spoofed sources), but no flow is ever proven.
# With the table full of them, a new legitimate client must be answered at
# once (an unproven flow is evicted for it). Before the fix a flow counted
# as established as soon as the backend answered and was never evicted:
# new clients got nothing until the idle timeout.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
it_init "$@"

ip route add local 10.77.0.0/16 dev lo
it_bg be 60 $SEC_PY echo --listen 127.0.0.1:5001 --seconds 55
it_wait_udp 5001
IT_WORKERS=1 IT_CONF_EXTRA="max-flows = 256
new-flow-rate = 0" it_conf "$T/ss.conf" <<EOC
[listen]
address = 127.0.0.1:4000

[route fwd]
match = any
forward = 127.0.0.1:5001
idle-timeout = 60s
EOC
it_daemon "$T/ss.conf"

/usr/bin/python3 - >"$T/ss.log" 2>&1 <<'EOP' || it_fail "$(tail -n 3 "$T/ss.log")"
import select, socket, sys, time
# 600 spoofed sources over 10.77.0-11.x, ~600/s: more than the table holds
socks = []
for i in range(600):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.77.%d.%d" % (i // 50, 1 + i % 50), 7000))
    s.sendto(b"spoof %d" % i, ("127.0.0.1", 4000))
    socks.append(s)
    time.sleep(0.0017)
time.sleep(0.5)
# now new legitimate clients, each must be answered within a second
ok = 0
for i in range(20):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.bind(("127.0.0.1", 0))
    t0 = time.monotonic()
    c.sendto(b"hello %d" % i, ("127.0.0.1", 4000))
    r, _, _ = select.select([c], [], [], 1.0)
    if r:
        c.recv(2048)
        ok += 1
    print("client %d: %s after %.0f ms" % (i, "answered" if r else "NOT answered",
                                          (time.monotonic() - t0) * 1000))
    c.close()
print("legitimate clients answered: %d of 20" % ok)
sys.exit(0 if ok == 20 else 1)
EOP
tail -n 1 "$T/ss.log"
s=$(timeout 5 "$UDPMUXCTL" -s "$T/control.sock" stats)
echo "$s" | grep -E "^(flows|drop)\." >&2
ev=$(echo "$s" | sed -n 's/^flows\.evicted=//p')
[ "${ev:-0}" -ge 20 ] || it_fail "flows.evicted=$ev: the spoofed flows were not what made room"
it_pass
