#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-kernel-reload.sh - kernel flows across a reload and a drain. A reload
# that keeps route a and removes route b keeps a's kernel flow (same
# conntrack entry, its next datagram is not queued again) and ends b's
# (its conntrack entry is deleted at once, logged). `udpmuxctl drain a`
# refuses new flows of a in the queue (NF_DROP, counted) while a's
# running kernel flow goes on. The daemon runs with UDPMUXD_SECCOMP=kill
# (a system call missing from the allow-list kills it) and every thread
# holds CAP_NET_ADMIN and nothing else (docs/security.md C12).
. "$(dirname "$0")/lib.sh"
it_init "$@"
it_child_ns cli 10.1.0.1 10.1.0.2
it_child_ns be 10.2.0.1 10.2.0.2
sysctl -qw net.ipv4.ip_forward=1
it_bg echo 60 ip netns exec "$(it_ns be)" $IT_UDP echo --listen 10.2.0.2:5001 --tag be \
    --max-seconds 55
# a backend that never answers (route c: a one-way flow)
it_bg sink 60 ip netns exec "$(it_ns be)" "$IT_PY" -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.2.0.2", 5009))
s.settimeout(55)
while True:
    s.recv(2048)'
for i in $(seq 1 50); do
    ip netns exec "$(it_ns be)" ss -Hlun "sport = :5001" | grep -q . &&
        ip netns exec "$(it_ns be)" ss -Hlun "sport = :5009" | grep -q . && break
    sleep 0.1
done
routes()
{
    cat <<CONF
[listen]
address = 10.1.0.1:$IT_PORT

[route a]
match = prefix 61
forward = 10.2.0.2:5001
datapath = kernel
CONF
    [ "$1" = noc ] || printf '\n[route c]\nmatch = prefix 63\nforward = 10.2.0.2:5009\ndatapath = kernel\n'
    [ "$1" = both ] && printf '\n[route b]\nmatch = prefix 62\nforward = 10.2.0.2:5001\ndatapath = kernel\n'
    return 0
}
routes both | it_conf "$T/udpmux.conf"
export UDPMUXD_SECCOMP=kill
it_daemon "$T/udpmux.conf"
for st in /proc/"$UMXD_PID"/task/*/status; do
    it_eq "$(awk '/^CapEff|^CapPrm/ {printf "%s ", $2}' "$st")" "0000000000001000 0000000000001000 " \
        "thread $(basename "$(dirname "$st")"): only CAP_NET_ADMIN"
done
grep -q '^Seccomp:[[:space:]]*2' "/proc/$UMXD_PID/status" || it_fail "no seccomp filter"

ctl() { timeout 5 "$UDPMUXCTL" -s "$T/control.sock" "$@"; }
stat() { ctl stats | tr ' ' '\n' | sed -n "s/^$1=//p"; }
ask() { timeout 10 ip netns exec "$(it_ns cli)" $IT_UDP ask --to "10.1.0.1:$IT_PORT" --tries 2 "$@"; }
ct_of() { conntrack -L -p udp --orig-port-src "$1" 2>/dev/null; }

it_eq "$(ask --bind 10.1.0.2:6001 --data a1)" "be|from=10.2.0.1:6001|a1" "route a"
it_eq "$(ask --bind 10.1.0.2:6002 --data b1)" "be|from=10.2.0.1:6002|b1" "route b"
it_eq "$(stat kernel.queued)" "2" "two flows queued"
[ -n "$(ct_of 6002)" ] || it_fail "no kernel flow for b"

routes a | it_conf "$T/udpmux.conf"
ctl reload >/dev/null || it_fail "reload refused"
it_wait_log "$T/udpmuxd.log" "ended 1 kernel flows of removed routes"
[ -z "$(ct_of 6002)" ] || it_fail "b's kernel flow survived its route: $(ct_of 6002)"
it_contains "$(ct_of 6001)" "packets=1" "a's kernel flow is still there"
it_eq "$(ask --bind 10.1.0.2:6001 --data a2)" "be|from=10.2.0.1:6001|a2" "a after the reload"
it_eq "$(stat kernel.queued)" "2" "a's flow was not queued again"
it_contains "$(ct_of 6001)" "packets=2" "the same conntrack entry carried it"
# b is gone: its datagrams match nothing now and are dropped in the queue
ask --bind 10.1.0.2:6002 --data b2 --timeout 0.3 --tries 1 >/dev/null 2>&1 && it_fail "b answered"
it_eq "$(stat kernel.dropped)" "1" "b's datagram dropped by the verdict"

# a burst on a new flow: nothing lost, the first datagram answered first
# (the datagrams that arrive while it waits are queued behind it)
burst=$(timeout 10 ip netns exec "$(it_ns cli)" "$IT_PY" - <<'PY'
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.1.0.2", 6100)); s.settimeout(2)
for i in range(100):
    s.sendto(b"a-seq=%d" % i, ("10.1.0.1", 4000))
got = []
try:
    while len(got) < 100:
        got.append(int(s.recvfrom(2048)[0].decode().rsplit("seq=", 1)[1]))
except socket.timeout:
    pass
inv = sum(1 for i in range(1, len(got)) if got[i] < got[i - 1])
print("%d %d %d" % (len(got), got[0] if got else -1, inv))
PY
)
read -r n first inv <<<"$burst"
it_log "burst of 100 on a new flow: $n answered, first seq $first, $inv inversions, ordered=$(stat kernel.ordered)"
it_eq "$n" "100" "a 100-datagram burst on a new flow: none lost"
it_eq "$first" "0" "the first datagram is answered first"

# a one-way flow (its backend never answers: syslog, NetFlow, statsd): only
# its first 16 datagrams go through the queue to keep them in line, the
# rest take the kernel path (fails on 2c52777: every datagram was queued)
q0=$(stat kernel.queued)
o0=$(stat kernel.ordered)
timeout 10 ip netns exec "$(it_ns cli)" "$IT_PY" - <<'PY'
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.1.0.2", 6300))
for i in range(60):
    s.sendto(b"c-seq=%d" % i, ("10.1.0.1", 4000))
    time.sleep(0.002)
PY
sleep 0.3
it_contains "$(ct_of 6300)" "packets=60" "the one-way flow's 60 datagrams reached the kernel flow"
it_eq "$(($(stat kernel.queued) - q0))" "1" "the one-way flow was decided once"
ord=$(($(stat kernel.ordered) - o0))
it_log "one-way flow: $ord of 60 datagrams kept in line through the queue"
[ "$ord" -le 16 ] || it_fail "$ord of a one-way flow's 60 datagrams went through the queue (window: 16)"
# past its window the flow is steady: KERNEL|USER in the ct mark, and one
# test ends the queue chains for its datagrams (nft.c, steady_rule)
mark=$(sed -n 's/.*mark=\([0-9]*\).*/\1/p' <<<"$(ct_of 6300)")
[ $(((mark >> 16) & 0x3000)) = $((0x3000)) ] || it_fail "the one-way flow is not steady: mark $mark"
ctl drain a >/dev/null || it_fail "drain refused"
ask --bind 10.1.0.2:6003 --data a3 --timeout 0.3 --tries 1 >/dev/null 2>&1 &&
    it_fail "a new flow of a drained route was answered"
it_eq "$(stat kernel.dropped)" "2" "the drained route's new flow dropped in the queue"
it_eq "$(ask --bind 10.1.0.2:6001 --data a4)" "be|from=10.2.0.1:6001|a4" "a's running flow goes on"
ctl undrain a >/dev/null
it_eq "$(ask --bind 10.1.0.2:6004 --data a5)" "be|from=10.2.0.1:6004|a5" "new flows again after undrain"
ctl -j flows -r c | grep -q '"datapath":"kernel"' || it_fail "flows: the steady flow is not listed"
# a steady flow ends with its route like any kernel flow (its ct mark also
# has the USER bit, which alone means a workers' flow: those are kept)
routes noc | it_conf "$T/udpmux.conf"
ctl reload >/dev/null || it_fail "reload refused"
for _ in $(seq 50); do [ -z "$(ct_of 6300)" ] && break; sleep 0.1; done
[ -z "$(ct_of 6300)" ] || it_fail "the steady flow survived its route: $(ct_of 6300)"
ctl -j flows | grep -q '"datapath":"kernel"' || it_fail "flows: no kernel flow"
it_alive udpmuxd || it_fail "udpmuxd died (seccomp kill mode)"
it_log_lacks udpmuxd "seccomp: refused"
it_pass
