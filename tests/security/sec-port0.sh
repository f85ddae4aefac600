#!/bin/bash
# sec-port0.sh - #12: one bad reply costs one reply. A raw sender with UDP
# source port 0 (a reply to it fails with EINVAL) interleaves its datagrams
# with 64 legitimate echo peers; every legitimate peer must get every answer.
# Before the fix the first refused message of a sendmmsg batch counted every
# later reply of the batch as an error and dropped it (1324 attacker
# datagrams cost 29265 replies), and turned GSO off for good.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
it_init "$@"

it_bg be 60 $SEC_PY echo --listen 127.0.0.1:5001 --seconds 50
it_wait_udp 5001
IT_WORKERS=1 IT_CONF_EXTRA="response-rate = 0
new-flow-rate = 0" it_conf "$T/p0.conf" <<EOC
[listen]
address = 127.0.0.1:4000

[route echo]
match = regex "^ping"
action = echo

[route fwd]
match = regex "^FWD"
forward = 127.0.0.1:5001
EOC
it_daemon "$T/p0.conf"

for kind in ping FWD; do
/usr/bin/python3 - "$kind" >"$T/p0-$kind.log" 2>&1 <<'EOP' || it_fail "$kind: $(tail -n 3 "$T/p0-$kind.log")"
import select, socket, struct, sys, time
kind = sys.argv[1].encode()
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
def port0(payload):
    # UDP header only (the kernel adds IP): sport 0, dport 4000, checksum 0
    raw.sendto(struct.pack("!HHHH", 0, 4000, 8 + len(payload), 0) + payload, ("127.0.0.1", 0))
peers = []
for i in range(64):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    peers.append(s)
rounds, lost, got = 30, 0, 0
for r in range(rounds):
    # the attacker's datagram first, so the legitimate replies come after
    # it in the same batch
    for k in range(4):
        port0(kind + b" evil %d" % r)
    for i, s in enumerate(peers):
        s.sendto(kind + b" %d %d" % (r, i), ("127.0.0.1", 4000))
    deadline = time.monotonic() + 1
    want = {id(s) for s in peers}
    while want and time.monotonic() < deadline:
        rd, _, _ = select.select(peers, [], [], 0.2)
        for s in rd:
            s.recv(2048)
            got += 1
            want.discard(id(s))
    lost += len(want)
print("kind=%s rounds=%d answered=%d lost=%d" % (kind.decode(), rounds, got, lost))
sys.exit(1 if lost else 0)
EOP
cat "$T/p0-$kind.log"
done
s=$(timeout 5 "$UDPMUXCTL" -s "$T/control.sock" stats)
echo "$s" | grep -E "^(tx|upstream)\.(datagrams|errors)" >&2
# the attacker's replies are the only errors: 30 x 4 per kind
errs=$(echo "$s" | sed -n 's/^tx\.errors=//p')
[ "$errs" -le 240 ] || it_fail "tx.errors=$errs: more than the attacker's own replies failed"
it_pass
