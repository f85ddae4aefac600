#!/usr/bin/env bash
# it-roam-dns.sh - DNS replies teach no roaming keys (issue 12): dnsmasq
# behind udpmuxd on a `roaming = yes` route; client A asks with a query ID
# >= 0x8000, then client B (another source port, no flow) asks with IDs
# >= 0x8000 too, then A again. Each gets its own answer, and no flow ever
# moves to another address.
#
# Before the fix lib/rules/roam.c read every datagram with the top bit of
# byte 0 set as a QUIC long header: dnsmasq's reply to A (ID 0x8a2f, one
# question, one answer) gave a one-byte "source connection id" (the high
# byte of NSCOUNT, 0), and B's first query (one question: "DCID" length 1,
# the high byte of ANCOUNT, 0) found that key and took A's flow:
# flows.roamed was 2 (B took A's flow, then A took it back; checked with the
# old roam.c).
. "$(dirname "$0")/lib.sh"
it_init "$@"
. "$(dirname "$0")/ctl-lib.sh"

it_bg dnsmasq 60 dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts \
    --listen-address=127.0.0.1 --bind-interfaces --port=5053 --user=root \
    --pid-file="$T/dnsmasq.pid" --local=/example.test/ --address=/www.example.test/192.0.2.10
it_wait_udp 5053

# one worker: the old defect moved the flow inside the worker that owns it
IT_WORKERS=1 it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route dns]
match = dns
forward = 127.0.0.1:5053
roaming = yes
CONF
it_daemon "$T/udpmux.conf"

# query ID HEX4 for www.example.test A, recursion desired
query()
{
    printf '%s0100000100000000000003777777076578616d706c6504746573740000010001' "$1"
}

# ask BIND ID: one query from BIND, checks the answer's ID and address
ask()
{
    local r
    r=$(timeout 10 $IT_UDP ask --to "127.0.0.1:$IT_PORT" --bind "$1" --hex "$(query "$2")" \
        --print-hex --tries 2 --timeout 2) || it_fail "no answer to ID $2 from $1"
    r=$(printf '%s' "$r" | tr -d ' \n' | tr 'A-F' 'a-f')
    it_contains "${r:0:4}" "$2" "answer ID for $1"
    it_contains "$r" "c000020a" "answer address (192.0.2.10) for $1, ID $2"
}

ask 127.0.0.1:40001 8a2f
for id in 8001 8a2f 9b00 c000 ff00 ffff; do
    ask 127.0.0.1:40002 "$id"
done
ask 127.0.0.1:40001 8a30

ctl -j stats >"$T/stats.json" || it_fail "udpmuxctl stats"
st() { jget "$T/stats.json" "d['stats']['$1']"; }
ctl_eq "$(st flows.roamed)" 0 "flows.roamed (a DNS query took another client's flow)"
ctl_eq "$(st flows.created)" 2 "flows.created (A and B)"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
