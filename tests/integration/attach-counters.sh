#!/usr/bin/env bash
# attach-counters.sh - what happens at the attach socket is counted, by
# reason (issue 12): a program that stops reading loses datagrams as
# attach.drop.full, and every datagram of its route is either delivered or
# dropped with that reason (route rx = attach.delivered + attach.drop.full);
# datagrams the program sends are attach.sent, malformed messages
# attach.drop.bad_message; the same numbers are on /metrics.
. "$(dirname "$0")/lib.sh"
it_init "$@"
PY=/usr/bin/python3
N=20000

IT_CONF_EXTRA="metrics = 127.0.0.1:9100" it_attach_conf "$T/udpmux.conf" alpha=ALPHA
it_daemon "$T/udpmux.conf"

# the program: attaches, sends one datagram to a peer, two malformed
# messages, then stops reading until told to go
cat >"$T/prog.py" <<'PY'
import socket, sys, time
sys.path.insert(0, sys.argv[2])
import udpmux_attach as ua
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(sys.argv[1])
s.send(b"H\x01\x00\x05alpha")
assert s.recv(256)[:1] == b"O"
s.send(ua.encode(b"ANS hello", ("127.0.0.1", 5001)))
s.send(b"X not a datagram")
s.send(b"D short")
print("attached", flush=True)
time.sleep(float(sys.argv[3]))
PY
it_bg prog 40 $PY "$T/prog.py" "$T/attach.sock" "$UMX_SRC/python" 20
it_wait_log "$T/prog.log" attached 5

stat()
{
    timeout 5 "$UDPMUXCTL" -s "$T/control.sock" stats | sed -n "s/^$1=//p"
}
for i in $(seq 1 50); do
    [ "$(stat attach.sent)" = 1 ] && break
    sleep 0.1
done
it_eq "$(stat attach.sent)" 1 "attach.sent"
it_eq "$(stat attach.drop.bad_message)" 2 "attach.drop.bad_message"
it_eq "$(stat attach.programs)" 1 "attach.programs"

# $N datagrams to a program that does not read
$PY - "$IT_PORT" "$N" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
for i in range(int(sys.argv[2])):
    s.sendto(b"ALPHA %d " % i + b"x" * 1200, ("127.0.0.1", int(sys.argv[1])))
    if i % 200 == 199:
        time.sleep(0.01)
PY
sleep 1
rx=$(timeout 5 "$UDPMUXCTL" -s "$T/control.sock" routes |
    awk '/^route / { r = $2 } r == "alpha:" && $1 == "in:" { print $2; exit }')
delivered=$(stat attach.delivered)
full=$(stat attach.drop.full)
it_log "route alpha rx=$rx, attach.delivered=$delivered, attach.drop.full=$full"
[ "${full:-0}" -gt 0 ] || it_fail "a program that does not read lost nothing (attach.drop.full=$full)"
it_eq "$((delivered + full))" "$rx" "delivered + drop.full = the route's datagrams"
curl -s -m 3 http://127.0.0.1:9100/metrics >"$T/metrics.txt" || it_fail "/metrics"
grep -q "^udpmux_attach_drops_total{reason=\"full\"} $full\$" "$T/metrics.txt" ||
    it_fail "/metrics: $(grep attach_drops "$T/metrics.txt" | tr '\n' ' ')"
grep -q "^udpmux_attach_sent_total 1\$" "$T/metrics.txt" || it_fail "/metrics attach sent"
it_pass
