#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-kernel-restart.sh - the kernel datapath on a host with its own rules,
# and after kill -9. The host has an nftables table of its own (input and
# forward chains, counters), iptables-nft rules in nat and mangle (one sets
# a packet mark bit of its own): udpmuxd adds only `table ip udpmuxd` /
# `ip6 udpmuxd`, leaves the host's rules byte for byte as they were, keeps
# the host's mark bits, and flows work through both. A udpmuxd killed with
# SIGKILL leaves its table and conntrack entries behind; the next one
# removes them (logged), installs exactly one table and carries flows
# again; a clean stop leaves only the host's rules.
. "$(dirname "$0")/lib.sh"
it_init "$@"
it_child_ns cli 10.1.0.1 10.1.0.2
it_child_ns be 10.2.0.1 10.2.0.2
sysctl -qw net.ipv4.ip_forward=1

# the host's own ruleset
nft -f - <<'NFT'
table inet host {
    counter seen { }
    chain input {
        type filter hook input priority filter; policy accept;
        udp dport 9999 drop
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state established,related counter name "seen" accept
    }
}
NFT
iptables-nft -t nat -A POSTROUTING -s 10.9.0.0/24 -o v-be -j MASQUERADE
iptables-nft -t mangle -A PREROUTING -p udp -j MARK --or-mark 0x1
# counts the queued (first) datagrams that still carry the host's bit after
# udpmuxd's verdict and the DNAT
iptables-nft -t mangle -A POSTROUTING -d 10.2.0.2 -p udp -m mark --mark 0x1/0x1 -m conntrack \
    --ctstate NEW
host_rules() { nft -s list ruleset | awk '/^table /{skip = ($3 == "udpmuxd")} !skip'; }
host_rules >"$T/host-before.txt"

it_bg dnsmasq 60 ip netns exec "$(it_ns be)" dnsmasq --no-daemon --conf-file=/dev/null \
    --no-resolv --no-hosts --listen-address=10.2.0.2 --bind-interfaces --port=5053 --user=root \
    --pid-file="$T/dnsmasq.pid" --address=/www.example.test/192.0.2.10
for i in $(seq 1 50); do
    ip netns exec "$(it_ns be)" ss -Hlun "sport = :5053" | grep -q . && break
    sleep 0.1
done

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 10.1.0.1:$IT_PORT

[route dns]
match = dns
forward = 10.2.0.2:5053
datapath = kernel
CONF
it_daemon "$T/udpmux.conf"

ctl() { timeout 5 "$UDPMUXCTL" -s "$T/control.sock" "$@"; }
stat() { ctl stats | tr ' ' '\n' | sed -n "s/^$1=//p"; }
dig_cli() { timeout 10 ip netns exec "$(it_ns cli)" dig @10.1.0.1 -p "$IT_PORT" +tries=1 +time=2 "$@"; }
tables() { nft list tables | grep -c 'udpmuxd' || true; }

for i in 1 2 3; do
    it_eq "$(dig_cli -b '10.1.0.2#6000' +short www.example.test A)" "192.0.2.10" "query $i"
done
it_eq "$(stat kernel.queued)" "1" "first datagram only, with the host's rules in place"
ct=$(conntrack -L -p udp --orig-port-src 6000 2>/dev/null)
it_contains "$ct" "packets=3" "the kernel carried the flow"
# the host's counter in its forward chain saw the kernel flow's replies
seen=$(nft list counter inet host seen)
grep -q "packets [1-9]" <<<"$seen" || it_fail "host forward chain not traversed: $seen $(conntrack -L 2>&1)"
it_eq "$(tables)" "1" "table ip udpmuxd (no IPv6 listener: no ip6 table)"
hostmark=$(iptables-nft -t mangle -L POSTROUTING -v -x -n | awk '/10.2.0.2/ {print $1}')
it_eq "$hostmark" "1" "the verdict kept the host's mark bit on the first datagram"
host_rules >"$T/host-running.txt"
cmp -s "$T/host-before.txt" "$T/host-running.txt" || it_fail "host rules changed: $(diff "$T/host-before.txt" "$T/host-running.txt")"

# kill -9: the table and the kernel flows stay behind
kill -KILL "$UMXD_PID"
for i in $(seq 1 50); do
    kill -0 "$UMXD_PID" 2>/dev/null || break
    sleep 0.1
done
it_eq "$(tables)" "1" "a killed udpmuxd leaves its table"
[ -n "$(conntrack -L -m 0x10000000/0x10000000 2>/dev/null)" ] || it_fail "no kernel flow left behind"

# a client that asks while no udpmuxd runs (the stale table's queue has no
# reader: bypass, closed port) leaves a conntrack entry with no mark and no
# NAT; as UDP conntrack calls every datagram before a reply "new", its flow
# would never be carried by the kernel while it keeps sending
dig_cli -b '10.1.0.2#6001' +time=1 www.example.test A >/dev/null 2>&1 || true
[ -n "$(conntrack -L -p udp --orig-port-src 6001 2>/dev/null)" ] || it_fail "no entry from the asking client"
# restart: stale table and conntrack entries removed, one table again
it_daemon "$T/udpmux.conf" udpmuxd2
it_log_has udpmuxd2 "removing the table a previous udpmuxd left behind"
it_log_has udpmuxd2 "removed [0-9]+ stale conntrack entries"
it_eq "$(tables)" "1" "no duplicate table"
tb=$(nft list table ip udpmuxd)
it_eq "$(grep -c 'ct state new .* queue num 4747' <<<"$tb")" "2" "one new-flow queue rule per hook"
for i in 1 2; do
    it_eq "$(dig_cli -b '10.1.0.2#6000' +short www.example.test A)" "192.0.2.10" "after restart $i"
done
it_eq "$(stat kernel.queued)" "1" "the old flow was removed: queued again once"
# the entry made while udpmuxd was down was reset at start: the client's
# flow is decided and carried by the kernel (DNAT to the backend), not
# left to the workers
it_log_has udpmuxd2 "reset [0-9]+ conntrack entries made before the queue"
for i in 1 2; do
    it_eq "$(dig_cli -b '10.1.0.2#6001' +short www.example.test A)" "192.0.2.10" "client that asked while down, $i"
done
ct=$(conntrack -L -p udp --orig-port-src 6001 2>/dev/null)
it_contains "$ct" "src=10.2.0.2" "its flow is NATed to the backend"
it_eq "$(stat rx.datagrams)" "0" "no datagram reached the workers"
ct=$(conntrack -L -p udp --orig-port-src 6000 2>/dev/null)
it_contains "$ct" "packets=2" "a fresh kernel flow"
for i in $(seq 1 5); do
    it_eq "$(dig_cli +short www.example.test A)" "192.0.2.10" "new flow $i"
done

kill -TERM "$UMXD_PID"
for i in $(seq 1 50); do
    kill -0 "$UMXD_PID" 2>/dev/null || break
    sleep 0.1
done
it_eq "$(tables)" "0" "no udpmuxd table after a clean stop"
host_rules >"$T/host-after.txt"
cmp -s "$T/host-before.txt" "$T/host-after.txt" || it_fail "host rules changed: $(diff "$T/host-before.txt" "$T/host-after.txt")"
it_pass
