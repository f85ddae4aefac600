#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-ipv6.sh - IPv6 listeners: dnsmasq on ::1 answers dig -6 through
# [::1]:PORT; a wildcard [::]:PORT listener answers from the exact address
# each client used (two addresses on lo, IPV6_PKTINFO); a dual-stack
# wildcard also takes IPv4 (v4-mapped) and replies over IPv4; an IPv4
# client reaches an IPv6 backend.
. "$(dirname "$0")/lib.sh"
it_init "$@"
ip -6 addr add fd00:75:6d78::1/64 dev lo nodad
ip -6 addr add fd00:75:6d78::2/64 dev lo nodad

it_bg dnsmasq 60 dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts \
    --listen-address=::1 --bind-interfaces --port=5053 --user=root --local=/example.test/ \
    --pid-file="$T/dnsmasq.pid" --address=/www.example.test/2001:db8::10
it_echo e6 "[::1]:5001"
it_wait_udp 5053
it_wait_udp 5001

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = [::1]:$IT_PORT, [::]:4001, 127.0.0.1:$IT_PORT

[route dns]
match = dns
forward = [::1]:5053

[route echo]
match = any
forward = [::1]:5001
CONF
it_daemon "$T/udpmux.conf"

a=$(timeout 10 dig -6 @::1 -p "$IT_PORT" +tries=2 +time=2 +short www.example.test AAAA)
it_eq "$a" "2001:db8::10" "dig -6 through [::1]"
a=$(timeout 10 dig -4 @127.0.0.1 -p "$IT_PORT" +tries=2 +time=2 +short www.example.test AAAA)
it_eq "$a" "2001:db8::10" "IPv4 client, IPv6 backend"
# the wildcard listener replies from the address each client sent to
for addr in fd00:75:6d78::1 fd00:75:6d78::2 ::1; do
    out=$(it_ask "[$addr]:4001" "to-$addr" --show-peer)
    it_contains "$out" "e6|from=[::1]:" "echo through [::]:4001 via $addr"
    it_contains "$out" "peer=[$addr]:4001" "reply source for $addr"
done
it_alive udpmuxd || it_fail "udpmuxd died"
it_stop udpmuxd

# dual-stack wildcard: IPv4 clients arrive v4-mapped, answers go back as IPv4
it_conf "$T/dual.conf" <<CONF
[listen]
address = [::]:4002
dual-stack = yes

[route echo]
match = any
forward = [::1]:5001
CONF
it_daemon "$T/dual.conf" udpmuxd-dual
out=$(it_ask "127.0.0.1:4002" "v4-to-dual" --show-peer)
it_contains "$out" "peer=127.0.0.1:4002" "IPv4 answer from the dual-stack listener"
out=$(it_ask "[fd00:75:6d78::2]:4002" "v6-to-dual" --show-peer)
it_contains "$out" "peer=[fd00:75:6d78::2]:4002" "IPv6 answer from the dual-stack listener"
it_pass
