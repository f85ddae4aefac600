#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-ntp.sh - chronyd serves NTP behind udpmuxd; a second chronyd in
# one-shot client mode (-Q, no clock change) measures the offset through
# the shared port, with and without a symmetric key.
. "$(dirname "$0")/lib.sh"
it_init "$@"

printf '1 MD5 HEX:3132333435363738393031323334353637383930\n' >"$T/keys"
cat >"$T/server.conf" <<CONF
port 5123
bindaddress 127.0.0.1
allow 127.0.0.0/8
local stratum 8
keyfile $T/keys
cmdport 0
pidfile $T/server.pid
driftfile $T/drift
CONF
it_bg chronyd 60 chronyd -d -x -U -u root -f "$T/server.conf"
it_wait_udp 5123
it_chrony_ready 5123

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route ntp]
match = ntp
forward = 127.0.0.1:5123

[route rest]
match = any
action = echo
CONF
it_daemon "$T/udpmux.conf"

ntp_query()
{
    cat >"$T/client.conf" <<CONF
server 127.0.0.1 port $IT_PORT iburst $1 maxsamples 4 minpoll -6 maxpoll -6
port 0
cmdport 0
keyfile $T/keys
pidfile $T/client.pid
CONF
    # chronyd -Q judges its few samples itself and, on a loaded machine,
    # sometimes finds them unsuitable although every request was answered;
    # a mux that does not forward fails all three tries
    local out _
    for _ in 1 2 3; do
        out=$(timeout 20 chronyd -Q -x -U -u root -t 10 -f "$T/client.conf" 2>&1) || true
        if grep -q "System clock wrong by" <<<"$out"; then
            echo "$out"
            return 0
        fi
    done
    echo "$out"
    return 1
}
out=$(ntp_query "") || it_fail "chronyd -Q got no NTP answer: $out"
it_contains "$out" "System clock wrong by" "NTP offset through the mux"
out=$(ntp_query "key 1") || it_fail "chronyd -Q (key 1) got no NTP answer: $out"
it_contains "$out" "System clock wrong by" "authenticated NTP through the mux"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
