#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-dns.sh - dnsmasq behind udpmuxd; dig and kdig ask through the shared
# port, which also answers STUN itself (so the DNS route is not alone).
. "$(dirname "$0")/lib.sh"
it_init "$@"

it_bg dnsmasq 60 dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts \
    --listen-address=127.0.0.1 --bind-interfaces --port=5053 --user=root \
    --pid-file="$T/dnsmasq.pid" --local=/example.test/ --address=/www.example.test/192.0.2.10 \
    --txt-record=txt.example.test,"udpmux test record"
it_wait_udp 5053

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route stun]
match = stun
action = stun

[route dns]
match = dns
forward = 127.0.0.1:5053
CONF
it_daemon "$T/udpmux.conf"

a=$(timeout 10 dig @127.0.0.1 -p "$IT_PORT" +tries=2 +time=2 +short www.example.test A)
it_eq "$a" "192.0.2.10" "dig A through the mux"
a=$(timeout 10 dig @127.0.0.1 -p "$IT_PORT" +tries=2 +time=2 +short txt.example.test TXT)
it_eq "$a" '"udpmux test record"' "dig TXT through the mux"
a=$(timeout 10 kdig @127.0.0.1 -p "$IT_PORT" +retry=1 +time=2 +short +noedns www.example.test A)
it_eq "$a" "192.0.2.10" "kdig A (no EDNS) through the mux"
# NXDOMAIN comes back as such (the answer is relayed, not rewritten)
a=$(timeout 10 dig @127.0.0.1 -p "$IT_PORT" +tries=2 +time=2 nosuch.example.test A)
it_contains "$a" "status: NXDOMAIN" "dig NXDOMAIN"
# ten queries from ten source ports: ten flows, all answered
for i in $(seq 1 10); do
    a=$(timeout 10 dig @127.0.0.1 -p "$IT_PORT" +tries=2 +time=2 +short www.example.test A)
    it_eq "$a" "192.0.2.10" "dig #$i"
done
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
