#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-proxyv2.sh - `proxy-protocol = v2` against a real PROXY v2 receiver:
# unbound 1.17 (Debian 12) with `proxy-protocol-port:` behind udpmuxd. Each
# query reaches unbound behind a PROXY v2 header naming the real client, and
# unbound applies its access-control and its query log to that address, not
# to udpmuxd's: a client that access-control refuses gets REFUSED although
# udpmuxd's own address is allowed, an allowed client gets its answer. IPv4
# and IPv6 clients; several queries of one flow (a header on each); active
# health checks (`health = dns`) send a LOCAL header, which unbound answers
# for udpmuxd's own address, so the backend stays up.
. "$(dirname "$0")/lib.sh"
it_init "$@"
command -v unbound >/dev/null || { echo "SKIP: unbound missing"; exit 77; }
command -v dig >/dev/null || { echo "SKIP: dig missing (dnsutils)"; exit 77; }
ip addr add 127.0.0.9/8 dev lo
ip addr add 127.0.0.10/8 dev lo
ip -6 addr add fd00:75:6d78::1/64 dev lo nodad
ip -6 addr add fd00:75:6d78::9/64 dev lo nodad
ip -6 addr add fd00:75:6d78::10/64 dev lo nodad

cat >"$T/unbound.conf" <<CONF
server:
    interface: 127.0.0.1@5053
    interface: ::1@5053
    proxy-protocol-port: 5053
    do-daemonize: no
    use-syslog: no
    logfile: "$T/unbound-queries.log"
    log-queries: yes
    username: ""
    chroot: ""
    directory: "$T"
    pidfile: "$T/unbound.pid"
    num-threads: 1
    module-config: "iterator"
    # udpmuxd's own addresses (127.0.0.1, ::1) are allowed: a refusal can
    # only come from the client address in the PROXY v2 header
    access-control: 127.0.0.0/8 allow
    access-control: ::1/128 allow
    access-control: fd00:75:6d78::/64 allow
    access-control: 127.0.0.10/32 refuse
    access-control: fd00:75:6d78::10/128 refuse
    local-zone: "example." static
    local-data: "test.example. 60 IN A 192.0.2.1"
    local-data: "test.example. 60 IN AAAA 2001:db8::1"
remote-control:
    control-enable: no
CONF
unbound-checkconf "$T/unbound.conf" >/dev/null || it_fail "unbound-checkconf"
it_bg unbound 60 unbound -d -c "$T/unbound.conf"
it_wait_udp 5053

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT, [fd00:75:6d78::1]:$IT_PORT

[route dns6]
match = dns and from fd00:75:6d78::/64
forward = [::1]:5053
proxy-protocol = v2

[route dns]
match = dns
forward = 127.0.0.1:5053
proxy-protocol = v2
health = dns
health-interval = 300ms
health-timeout = 200ms
CONF
it_daemon "$T/udpmux.conf"

# ask FROM TO TYPE: status and answer of one query through udpmuxd
ask()
{
    dig +tries=1 +time=3 +norec -b "$1" -p "$IT_PORT" "@$2" test.example "$3" 2>&1 |
        awk '/status:/ { sub(/,.*/, "", $6); s = $6 } /^test\.example\./ { a = $5 } END { print s, a }'
}
it_eq "$(ask 127.0.0.9 127.0.0.1 A)" "NOERROR 192.0.2.1" "allowed IPv4 client"
it_eq "$(ask 127.0.0.10 127.0.0.1 A)" "REFUSED " "IPv4 client refused by unbound's access-control"
# one flow (fixed source port), several datagrams: a header on each
for i in 1 2 3; do
    out=$(dig +tries=1 +time=3 +norec -b 127.0.0.9#6000 -p "$IT_PORT" @127.0.0.1 test.example A +short)
    it_eq "$out" "192.0.2.1" "query $i of one flow"
done
it_eq "$(ask fd00:75:6d78::9 fd00:75:6d78::1 AAAA)" "NOERROR 2001:db8::1" "allowed IPv6 client"
it_eq "$(ask fd00:75:6d78::10 fd00:75:6d78::1 AAAA)" "REFUSED " "IPv6 client refused"

# unbound's query log names the clients from the headers, never udpmuxd
it_wait_log "$T/unbound-queries.log" "127\.0\.0\.9 test\.example\. A IN" 3
it_wait_log "$T/unbound-queries.log" "fd00:75:6d78::9 test\.example\. AAAA IN" 3
[ "$(grep -c '127\.0\.0\.9 test\.example\. A IN' "$T/unbound-queries.log")" -ge 4 ] ||
    it_fail "unbound did not log every query of 127.0.0.9"
# health checks: LOCAL header, unbound answers for udpmuxd's own address
sleep 1
it_log_lacks udpmuxd "is DOWN" "health of the PROXY v2 backend"
it_alive unbound || it_fail "unbound died"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
