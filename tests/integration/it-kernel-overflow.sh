#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-kernel-overflow.sh - a new flow that overflows the queue is still
# carried by the kernel afterwards. The queue for new flows does not fail
# open: a datagram let past a full queue would confirm a conntrack entry
# without NAT, and as UDP conntrack calls every unanswered datagram new and
# the NAT of a confirmed entry is fixed, the flow would stay on the user
# path for as long as it keeps sending (bench/run found it: 100 flows at
# 0.17x direct, udpmuxd at 63 % CPU). A full queue drops instead, counted
# (kernel.queue_full), and the flow's next datagram is decided.
# Also: conntrack accounting turned off while udpmuxd runs is reported.
# The queue is filled for real: udpmuxd is stopped (SIGSTOP) while one new
# flow sends more datagrams than the queue holds (4096).
. "$(dirname "$0")/lib.sh"
it_init "$@"
it_child_ns cli 10.1.0.1 10.1.0.2
it_child_ns be 10.2.0.1 10.2.0.2
sysctl -qw net.ipv4.ip_forward=1
it_bg echo 60 ip netns exec "$(it_ns be)" $IT_UDP echo --listen 10.2.0.2:5001 --tag be \
    --max-seconds 55
for i in $(seq 1 50); do
    ip netns exec "$(it_ns be)" ss -Hlun "sport = :5001" | grep -q . && break
    sleep 0.1
done
it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 10.1.0.1:$IT_PORT

[route a]
match = any
forward = 10.2.0.2:5001
datapath = kernel
CONF
it_daemon "$T/udpmux.conf"

ctl() { timeout 5 "$UDPMUXCTL" -s "$T/control.sock" "$@"; }
stat() { ctl stats | tr ' ' '\n' | sed -n "s/^$1=//p"; }
ask() { timeout 10 ip netns exec "$(it_ns cli)" $IT_UDP ask --to "10.1.0.1:$IT_PORT" --tries 2 "$@"; }
ct_of() { conntrack -L -p udp --orig-port-src "$1" 2>/dev/null; }

it_eq "$(ask --bind 10.1.0.2:6001 --data warm)" "be|from=10.2.0.1:6001|warm" "a kernel flow first"

# fill the queue: 6000 datagrams of one new flow while udpmuxd is stopped
kill -STOP "$UMXD_PID"
timeout 20 ip netns exec "$(it_ns cli)" "$IT_PY" - <<'PY' || true
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
s.bind(("10.1.0.2", 6200))
for i in range(6000):
    s.sendto(b"fill-%d" % i, ("10.1.0.1", 4000))
PY
it_log "while stopped: $(ct_of 6200 | head -n 1)"
kill -CONT "$UMXD_PID"
sleep 1
it_log "after: queue_full=$(stat kernel.queue_full) queued=$(stat kernel.queued) rx=$(stat rx.datagrams)"

# the same flow, one datagram at a time: carried by the kernel again
sleep 0.5
rx0=$(stat rx.datagrams)
for n in 1 2 3 4 5; do
    it_eq "$(ask --bind 10.1.0.2:6200 --data again$n)" "be|from=10.2.0.1:6200|again$n" "datagram $n after"
done
ct=$(ct_of 6200)
it_log "entry: $ct"
it_contains "$ct" "src=10.2.0.2 dst=10.2.0.1 sport=5001" "the flow is DNATed to the backend"
case "$ct" in *"mark=0 "*) it_fail "the entry still has no udpmuxd mark: $ct" ;; esac
it_eq "$(stat rx.datagrams)" "$rx0" "the workers no longer see the flow"
[ "$(stat kernel.queue_full)" -ge 1 ] || it_fail "the queue never filled (kernel.queue_full 0)"

# conntrack accounting turned off by someone: udpmuxd says so (the order
# rule counts datagrams with it; without, every unanswered datagram of a
# new kernel flow is queued for the flow's whole life), and when it is on
# again; seccomp lets it read the setting, not write it
sysctl -qw net.netfilter.nf_conntrack_acct=0
it_wait_log "$T/udpmuxd.log" "nf_conntrack_acct was turned off"
sysctl -qw net.netfilter.nf_conntrack_acct=1
it_wait_log "$T/udpmuxd.log" "nf_conntrack_acct is on again"
it_log_lacks udpmuxd "seccomp: refused"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
