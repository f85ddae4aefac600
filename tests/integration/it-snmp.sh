#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-snmp.sh - snmpd behind udpmuxd; snmpget (v1 and v2c) and snmpbulkget
# read values through the shared port, next to a STUN route.
. "$(dirname "$0")/lib.sh"
it_init "$@"

cat >"$T/snmpd.conf" <<CONF
agentaddress udp:127.0.0.1:5161
rocommunity public 127.0.0.1
sysLocation udpmux test lab
sysContact test@example.test
CONF
MIBS=none it_bg snmpd 60 snmpd -f -Lo -C -c "$T/snmpd.conf" -p "$T/snmpd.pid" \
    -I -smux,mteTrigger,mteTriggerConf
it_wait_udp 5161

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route stun]
match = stun
action = stun

[route snmp]
match = snmp
forward = 127.0.0.1:5161
CONF
it_daemon "$T/udpmux.conf"

o=(-r 1 -t 2 -m none -Oqv) # numeric OIDs: the MIB files are non-free in Debian
a=$(timeout 10 snmpget "${o[@]}" -v2c -c public "127.0.0.1:$IT_PORT" 1.3.6.1.2.1.1.6.0)
it_eq "$a" '"udpmux test lab"' "sysLocation (v2c)"
a=$(timeout 10 snmpget "${o[@]}" -v1 -c public "127.0.0.1:$IT_PORT" 1.3.6.1.2.1.1.4.0)
it_eq "$a" '"test@example.test"' "sysContact (v1)"
a=$(timeout 10 snmpbulkget "${o[@]}" -v2c -c public -Cr3 "127.0.0.1:$IT_PORT" 1.3.6.1.2.1.1.4)
it_contains "$a" '"udpmux test lab"' "bulkget"
# a wrong community gets no answer (snmpd's decision, relayed faithfully)
if timeout 10 snmpget -r 0 -t 1 -m none -v2c -c wrong "127.0.0.1:$IT_PORT" \
    1.3.6.1.2.1.1.6.0 >/dev/null 2>&1; then
    it_fail "answer with a wrong community"
fi
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
