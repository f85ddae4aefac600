#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-kernel-transparent.sh - what the backend sees with datapath = kernel,
# IPv4 and IPv6:
#   transparent = no  (default): udpmuxd's host address (masquerade), like
#                     the user-space path
#   transparent = yes: the client's own address and port (DNAT only); the
#                     backend's route to the client goes through udpmuxd's
#                     host (here its default route), where conntrack undoes
#                     the DNAT on the way back. No policy routing is needed:
#                     the answer is forwarded, not delivered locally.
# Each flow sends twice; the queue sees one datagram per flow and the
# answers come from the public address and port.
#
#   cli 10.1.0.2 fd01::2 --- [udpmuxd 10.1.0.1 fd01::1] --- 10.2.0.2 fd02::2 be
. "$(dirname "$0")/lib.sh"
it_init "$@"
it_child_ns cli 10.1.0.1 10.1.0.2
it_child_ns be 10.2.0.1 10.2.0.2
sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
ip addr add fd01::1/64 dev v-cli nodad
ip addr add fd02::1/64 dev v-be nodad
ip -n "$(it_ns cli)" addr add fd01::2/64 dev eth0 nodad
ip -n "$(it_ns be)" addr add fd02::2/64 dev eth0 nodad
ip -n "$(it_ns cli)" -6 route add default via fd01::1
ip -n "$(it_ns be)" -6 route add default via fd02::1

for p in 5001 5002; do
    it_bg "echo4-$p" 60 ip netns exec "$(it_ns be)" $IT_UDP echo --listen "10.2.0.2:$p" \
        --tag "be$p" --max-seconds 55
    it_bg "echo6-$p" 60 ip netns exec "$(it_ns be)" $IT_UDP echo --listen "[fd02::2]:$p" \
        --tag "be6-$p" --max-seconds 55
done
for i in $(seq 1 50); do
    [ "$(ip netns exec "$(it_ns be)" ss -Hlun | wc -l)" -ge 4 ] && break
    sleep 0.1
done

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 10.1.0.1:$IT_PORT
address = [fd01::1]:$IT_PORT

[route plain]
match = prefix 706c61696e
forward = 10.2.0.2:5001
datapath = kernel

[route plain6]
match = prefix 736978
forward = [fd02::2]:5001
datapath = kernel

[route transparent6]
match = prefix 7436
forward = [fd02::2]:5002
datapath = kernel
transparent = yes

[route transparent]
match = any
forward = 10.2.0.2:5002
datapath = kernel
transparent = yes
CONF
it_daemon "$T/udpmux.conf"

ctl() { timeout 5 "$UDPMUXCTL" -s "$T/control.sock" "$@"; }
stat() { ctl stats | tr ' ' '\n' | sed -n "s/^$1=//p"; }
ask() { timeout 10 ip netns exec "$(it_ns cli)" $IT_UDP ask --show-peer --tries 2 "$@"; }
twice()
{
    local to=$1 bind=$2 data=$3 want=$4 what=$5 out
    for i in 1 2; do
        out=$(ask --to "$to" --bind "$bind" --data "$data") || it_fail "$what: no answer"
        it_eq "$out" "$want
peer=$to" "$what (datagram $i, answered from the public address)"
    done
}

out=$(ask --to "10.1.0.1:$IT_PORT" --bind 10.1.0.2:6000 --data plain-1) || it_fail "plain: no answer"
it_contains "$out" "be5001|from=10.2.0.1:" "plain: the backend sees udpmuxd's host"
twice "10.1.0.1:$IT_PORT" 10.1.0.2:6001 hello "be5002|from=10.1.0.2:6001|hello" \
    "transparent: the backend sees the client"
out=$(ask --to "[fd01::1]:$IT_PORT" --bind "[fd01::2]:6002" --data six-1) || it_fail "plain6: no answer"
it_contains "$out" "be6-5001|from=[fd02::1]:" "IPv6 plain: the backend sees udpmuxd's host"
twice "[fd01::1]:$IT_PORT" "[fd01::2]:6003" t6-x "be6-5002|from=[fd01::2]:6003|t6-x" \
    "IPv6 transparent: the backend sees the client"
it_eq "$(stat kernel.queued)" "4" "one queued datagram per flow"
it_eq "$(stat kernel.to_kernel)" "4" "four kernel flows"
it_eq "$(stat rx.datagrams)" "0" "the workers saw none of it"
it_eq "$(stat kernel.flows)" "4" "four conntrack entries with udpmuxd's mark"
t6=$(nft list table ip6 udpmuxd)
grep -q 'dnat to \[fd02::2\]:5002' <<<"$t6" || it_fail "no IPv6 dnat rule"
it_pass
