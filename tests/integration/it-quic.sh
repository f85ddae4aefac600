#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-quic.sh - ngtcp2's example server and client (GnuTLS build) complete an
# HTTP/3 request through udpmuxd: the route picks QUIC by the SNI in the
# (decrypted) Initial packet; a 100 kB file arrives byte-exact.
. "$(dirname "$0")/lib.sh"
it_init "$@"
Q=$UMX_SRC/tests/data/integration/quic
mkdir -p "$T/htdocs" "$T/dl"
head -c 100000 /dev/urandom >"$T/htdocs/blob.bin"
# the client sends the host name of its <HOST> argument as SNI (its --sni
# option does not reach the ClientHello in this version): name the loopback
# in a private /etc/hosts (the mount namespace is the test's own)
printf '127.0.0.1 localhost quic.example.test other.example.test\n' >"$T/hosts"
mount --bind "$T/hosts" /etc/hosts

it_bg quic-server 60 gtlsserver --quiet -d "$T/htdocs" 127.0.0.1 5433 "$Q/server.key" \
    "$Q/server.crt"
it_wait_udp 5433

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route quic]
match = quic sni=quic.example.test
forward = 127.0.0.1:5433

[route other-quic]
match = quic
action = drop

[route rest]
match = any
action = echo
CONF
it_daemon "$T/udpmux.conf"

timeout 20 gtlsclient --quiet --exit-on-all-streams-close --download "$T/dl" \
    quic.example.test "$IT_PORT" "https://quic.example.test:$IT_PORT/blob.bin" \
    >"$T/quic-client.log" 2>&1 || it_fail "gtlsclient failed (exit $?)"
cmp "$T/htdocs/blob.bin" "$T/dl/blob.bin" || it_fail "downloaded file differs"
# another SNI is dropped by the second route: nothing arrives (the client
# exits 0 on an idle close, so the missing file is the verdict)
mkdir -p "$T/dl2"
timeout 10 gtlsclient --quiet --exit-on-all-streams-close --timeout=2s --download "$T/dl2" \
    other.example.test "$IT_PORT" "https://other.example.test:$IT_PORT/blob.bin" \
    >"$T/quic-other.log" 2>&1 || true
[ ! -e "$T/dl2/blob.bin" ] || it_fail "a QUIC connection with another SNI was forwarded"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
