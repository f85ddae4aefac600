#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-stun.sh - STUN on the shared port two ways: udpmuxd's built-in binding
# responder (action = stun) and a real coturn behind a forward route. The
# rule tells them apart by the client's source address (127.0.0.2 goes to
# coturn); turnutils_stunclient checks both answers. The built-in route runs
# on defaults: it must answer the 20-byte requests of standard clients;
# `reply-size = request` (127.0.0.3's route) stays silent to them.
. "$(dirname "$0")/lib.sh"
it_init "$@"
ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true
ip addr add 127.0.0.3/8 dev lo 2>/dev/null || true

it_bg turnserver 60 turnserver -n --listening-ip=127.0.0.1 --listening-port=5478 \
    --relay-ip=127.0.0.1 --no-tls --no-dtls --no-cli --no-tcp --realm=example.test \
    --log-file=stdout --simple-log --pidfile="$T/turn.pid" --userdb="$T/turn.db"
it_wait_udp 5478

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route coturn]
match = stun and from 127.0.0.2/32
forward = 127.0.0.1:5478
health = stun
health-interval = 300ms
health-timeout = 200ms
health-fall = 2

[route strict]
match = stun and from 127.0.0.3/32
action = stun
reply-size = request

[route stun]
match = stun
action = stun
CONF
it_daemon "$T/udpmux.conf"

# built-in responder on defaults (turnutils sends 20-byte requests; the
# smallest answer is 32 bytes): the reflexive address is the client's own
out=$(timeout 10 turnutils_stunclient -p "$IT_PORT" 127.0.0.1 2>&1) || true
it_contains "$out" "UDP reflexive addr: 127.0.0.1:" "built-in STUN answer on defaults"
# reply-size = request: never more bytes than the request, so no answer
out=$(timeout 3 turnutils_stunclient -p "$IT_PORT" -L 127.0.0.3 127.0.0.1 2>&1) || true
if grep -q "reflexive addr" <<<"$out"; then
    it_fail "reply-size = request answered a 20-byte request: $out"
fi
# coturn via the forward route: its reflexive address is the mux's upstream
# socket (127.0.0.1, not the client's 127.0.0.2): proof that coturn answered
out=$(timeout 10 turnutils_stunclient -p "$IT_PORT" -L 127.0.0.2 127.0.0.1 2>&1) || true
it_contains "$out" "UDP reflexive addr: 127.0.0.1:" "coturn STUN answer"
if grep 'reflexive' <<<"$out" | grep -q "127.0.0.2"; then
    it_fail "the 127.0.0.2 client was answered by the built-in responder, not coturn"
fi
# active STUN health checks against coturn succeeded all along
it_log_lacks udpmuxd "health: .*DOWN" "coturn's health while it runs"
# without coturn the forward route has nobody to answer: proof that the
# answers above came from coturn and not from the built-in responder
it_stop turnserver
# ... and the STUN health check notices
it_wait_log "$T/udpmuxd.log" "health: route coturn backend 127.0.0.1:5478 is DOWN" 5
out=$(timeout 3 turnutils_stunclient -p "$IT_PORT" -L 127.0.0.2 127.0.0.1 2>&1) || true
if grep -q "reflexive addr" <<<"$out"; then
    it_fail "an answer without coturn: $out"
fi
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
