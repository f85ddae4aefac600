#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-kernel-timeouts.sh - a kernel flow keeps its route's timeouts across a
# reload. Each kernel route's unanswered-/idle-timeout is an nftables ct
# timeout policy attached to the flow's conntrack entry at its first
# datagram. A reload that leaves a route's timeouts as they were must keep
# that policy on the route's running flows (before the fix the reload
# replaced the whole table, the kernel detached the destroyed policies, and
# the flows fell back to its default UDP timeouts, 120 s once answered); a
# route whose idle-timeout changes gives its new flows the new value (its
# running flows get the kernel's defaults: their old policy is gone). The
# table then holds one policy per route, none left over. Route a6 does
# the same through `table ip6 udpmuxd`.
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
it_bg echo 60 ip netns exec "$(it_ns be)" $IT_UDP echo --listen 10.2.0.2:5001 --tag be \
    --max-seconds 55
it_bg echo6 60 ip netns exec "$(it_ns be)" $IT_UDP echo --listen "[fd02::2]:5001" --tag be6 \
    --max-seconds 55
for i in $(seq 1 50); do
    [ "$(ip netns exec "$(it_ns be)" ss -Hlun "sport = :5001" | wc -l)" -ge 2 ] && break
    sleep 0.1
done
# routes CIDLE [b]: a keeps idle-timeout 7m, c's idle-timeout is CIDLE, b
# (unrelated) is there with a second argument
routes()
{
    printf '[listen]\naddress = 10.1.0.1:%s\naddress = [fd01::1]:%s\n' "$IT_PORT" "$IT_PORT"
    printf '\n[route a]\nmatch = prefix 61\nforward = 10.2.0.2:5001\ndatapath = kernel\n'
    printf 'idle-timeout = 7m\n'
    printf '\n[route a6]\nmatch = prefix 64\nforward = [fd02::2]:5001\ndatapath = kernel\n'
    printf 'idle-timeout = 7m\n'
    printf '\n[route c]\nmatch = prefix 63\nforward = 10.2.0.2:5001\ndatapath = kernel\n'
    printf 'idle-timeout = %s\n' "$1"
    [ "${2:-}" = b ] &&
        printf '\n[route b]\nmatch = prefix 62\nforward = 10.2.0.2:5001\ndatapath = kernel\n%s\n' \
            'idle-timeout = 4m'
    return 0
}
routes 5m | it_conf "$T/udpmux.conf"
it_daemon "$T/udpmux.conf"

ctl() { timeout 5 "$UDPMUXCTL" -s "$T/control.sock" "$@"; }
stat() { ctl stats | tr ' ' '\n' | sed -n "s/^$1=//p"; }
ask() { timeout 10 ip netns exec "$(it_ns cli)" $IT_UDP ask --to "10.1.0.1:$IT_PORT" --tries 2 "$@"; }
ask6() { timeout 10 ip netns exec "$(it_ns cli)" $IT_UDP ask --to "[fd01::1]:$IT_PORT" --tries 2 "$@"; }
# the entry of the flow from client port $1 (IPv6 for ports 6010..6019)
ct_of()
{
    local f=ipv4
    [ "$1" -ge 6010 ] && [ "$1" -le 6019 ] && f=ipv6
    conntrack -L -f "$f" -p udp --orig-port-src "$1" 2>/dev/null
}
# seconds conntrack has left for the flow from client port $1
left() { ct_of "$1" | awk 'NR == 1 { print $3 }'; }
# left PORT is within [LO, HI]
left_in()
{
    local s
    s=$(left "$1")
    if [ -z "$s" ] || [ "$s" -lt "$2" ] || [ "$s" -gt "$3" ]; then
        it_fail "$4: $1's flow has '$s' s left, want $2..$3 ($(ct_of "$1"))"
    fi
    it_log "$4: $s s left"
}
# (nft decodes not every expression of the table and says so on stderr)
policies() { nft list table "${1:-ip}" udpmuxd 2>/dev/null | grep -c '^[[:space:]]*ct timeout '; }

it_eq "$(ask --bind 10.1.0.2:6001 --data a1)" "be|from=10.2.0.1:6001|a1" "route a"
it_eq "$(ask --bind 10.1.0.2:6003 --data c1)" "be|from=10.2.0.1:6003|c1" "route c"
it_eq "$(ask6 --bind "[fd01::2]:6011" --data d1)" "be6|from=[fd02::1]:6011|d1" "route a6"
# conntrack gives an answered UDP flow its replied timeout only once it is
# older than two seconds (a "stream"); before, the unreplied one
sleep 2.2
it_eq "$(ask --bind 10.1.0.2:6001 --data a2)" "be|from=10.2.0.1:6001|a2" "route a, 2nd"
it_eq "$(ask --bind 10.1.0.2:6003 --data c2)" "be|from=10.2.0.1:6003|c2" "route c, 2nd"
it_eq "$(ask6 --bind "[fd01::2]:6011" --data d2)" "be6|from=[fd02::1]:6011|d2" "route a6, 2nd"
left_in 6001 400 420 "a's flow has its route's idle-timeout (7m)"
left_in 6011 400 420 "a6's flow has its route's idle-timeout (7m)"
left_in 6003 280 300 "c's flow has its route's idle-timeout (5m)"
# each family's table has one policy per kernel route
it_eq "$(policies)" "3" "one timeout policy per route (ip)"
it_eq "$(policies ip6)" "3" "one timeout policy per route (ip6)"

# the reload adds route b and changes c's idle-timeout; a is as it was
routes 9m b | it_conf "$T/udpmux.conf"
ctl reload >/dev/null || it_fail "reload refused"
it_wait_log "$T/udpmuxd.log" "configuration reloaded"
it_eq "$(ask --bind 10.1.0.2:6001 --data a3)" "be|from=10.2.0.1:6001|a3" "a after the reload"
it_contains "$(ct_of 6001)" "packets=3" "the same conntrack entry carried a's flow"
left_in 6001 400 420 "a's flow keeps its route's idle-timeout after the reload (kernel default: 120)"
it_eq "$(ask6 --bind "[fd01::2]:6011" --data d3)" "be6|from=[fd02::1]:6011|d3" "a6 after the reload"
left_in 6011 400 420 "a6's flow keeps its route's idle-timeout after the reload"
it_eq "$(ask --bind 10.1.0.2:6003 --data c3)" "be|from=10.2.0.1:6003|c3" "c after the reload"
left_in 6003 1 120 "c's running flow: its old policy is gone, the kernel's default applies"
it_log_has udpmuxd "timeouts changed on 1 kernel route: new flows get the new values"

# new flows after the reload: c's new value, b's own
it_eq "$(ask --bind 10.1.0.2:6005 --data c4)" "be|from=10.2.0.1:6005|c4" "route c, new flow"
it_eq "$(ask --bind 10.1.0.2:6007 --data b1)" "be|from=10.2.0.1:6007|b1" "route b, new flow"
sleep 2.2
it_eq "$(ask --bind 10.1.0.2:6005 --data c5)" "be|from=10.2.0.1:6005|c5" "route c, new flow, 2nd"
it_eq "$(ask --bind 10.1.0.2:6007 --data b2)" "be|from=10.2.0.1:6007|b2" "route b, new flow, 2nd"
left_in 6005 520 540 "c's new flow has c's new idle-timeout (9m)"
left_in 6007 220 240 "b's new flow has its route's idle-timeout (4m)"
it_eq "$(policies)" "4" "one timeout policy per route after the reload, none left over (ip)"
it_eq "$(policies ip6)" "4" "one timeout policy per route after the reload, none left over (ip6)"
it_log "policies: $(nft list table ip udpmuxd 2>/dev/null | sed -n 's/^[[:space:]]*ct timeout \([^ ]*\).*/\1/p' | xargs)"

# a reload that changes nothing keeps every policy
ctl reload >/dev/null || it_fail "second reload refused"
it_eq "$(stat reload.ok)" "2" "second reload applied"
it_eq "$(ask --bind 10.1.0.2:6001 --data a4)" "be|from=10.2.0.1:6001|a4" "a after the 2nd reload"
left_in 6001 400 420 "a's flow keeps its route's idle-timeout after a second reload"
it_eq "$(ask --bind 10.1.0.2:6005 --data c6)" "be|from=10.2.0.1:6005|c6" "c after the 2nd reload"
left_in 6005 520 540 "c's new flow keeps c's new idle-timeout after a second reload"
it_eq "$(policies)" "4" "the same policies after a reload that changed nothing"
it_eq "$(grep -c 'timeouts changed' "$T/udpmuxd.log")" "1" "no timeouts changed on the 2nd reload"
it_eq "$(stat kernel.queued)" "5" "five flows queued, none twice"
it_pass
