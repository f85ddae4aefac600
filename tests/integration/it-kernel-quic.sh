#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-kernel-quic.sh - ngtcp2's example server and client (GnuTLS build)
# through a kernel route chosen by the SNI in the QUIC Initial: the server
# in its own namespace, the client in another. udpmuxd's queue sees the
# client's first datagram(s) (and, the route roaming, at most two proof
# datagrams and the server's handshake datagrams); a 100 kB file arrives byte-exact over the kernel's flow; an
# Initial with another SNI is dropped in the queue.
. "$(dirname "$0")/lib.sh"
it_init "$@"
it_child_ns cli 10.1.0.1 10.1.0.2
it_child_ns be 10.2.0.1 10.2.0.2
sysctl -qw net.ipv4.ip_forward=1
Q=$UMX_SRC/tests/data/integration/quic
mkdir -p "$T/htdocs" "$T/dl"
head -c 100000 /dev/urandom >"$T/htdocs/blob.bin"
# the client sends the host name of its <HOST> argument as SNI: name the
# public address in a private /etc/hosts (the test's own mount namespace)
printf '127.0.0.1 localhost\n10.1.0.1 quic.example.test other.example.test\n' >"$T/hosts"
mount --bind "$T/hosts" /etc/hosts

it_bg quic-server 60 ip netns exec "$(it_ns be)" gtlsserver --quiet -d "$T/htdocs" 10.2.0.2 5433 \
    "$Q/server.key" "$Q/server.crt"
for i in $(seq 1 50); do
    ip netns exec "$(it_ns be)" ss -Hlun "sport = :5433" | grep -q . && break
    sleep 0.1
done

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 10.1.0.1:$IT_PORT

[route quic]
match = quic sni=quic.example.test
forward = 10.2.0.2:5433
datapath = kernel

[route other-quic]
match = quic
action = drop
CONF
it_daemon "$T/udpmux.conf"
ctl() { timeout 5 "$UDPMUXCTL" -s "$T/control.sock" "$@"; }
stat() { ctl stats | tr ' ' '\n' | sed -n "s/^$1=//p"; }

timeout 20 ip netns exec "$(it_ns cli)" gtlsclient --quiet --exit-on-all-streams-close \
    --download "$T/dl" quic.example.test "$IT_PORT" "https://quic.example.test:$IT_PORT/blob.bin" \
    >"$T/quic-client.log" 2>&1 || it_fail "gtlsclient failed (exit $?)"
cmp "$T/htdocs/blob.bin" "$T/dl/blob.bin" || it_fail "downloaded file differs"
q=$(stat kernel.queued)
[ "$q" -ge 1 ] && [ "$q" -le 3 ] || it_fail "the queue saw $q datagrams (want the first ones only)"
[ "$(stat kernel.replies)" -le 2 ] || it_fail "more than two proof datagrams queued"
# the server's long headers (its handshake) are queued to learn its
# connection id, none of the 1-RTT data that carried the file
hsk=$(stat kernel.handshakes)
it_log "server handshake datagrams queued: $hsk, keys learnt from them: $(stat kernel.reply_keys)"
[ "$hsk" -ge 1 ] && [ "$hsk" -le 12 ] || it_fail "$hsk of the server's datagrams queued (want its handshake only)"
[ "$(stat kernel.reply_keys)" -ge 1 ] || it_fail "no connection id learnt from the server's handshake"
it_eq "$(stat rx.datagrams)" "0" "the workers saw none of the connection"
# the reply direction's bytes (GSO trains count as one datagram there)
rb=$(conntrack -L -p udp --orig-port-dst "$IT_PORT" 2>/dev/null |
    sed -n 's/.* bytes=[0-9]* .* bytes=\([0-9]*\) .*/\1/p' | head -n 1)
[ "${rb:-0}" -ge 100000 ] || it_fail "the kernel flow carried ${rb:-0} reply bytes (want the file)"

mkdir -p "$T/dl2"
timeout 10 ip netns exec "$(it_ns cli)" gtlsclient --quiet --exit-on-all-streams-close \
    --timeout=2s --download "$T/dl2" other.example.test "$IT_PORT" \
    "https://other.example.test:$IT_PORT/blob.bin" >"$T/quic-other.log" 2>&1 || true
[ ! -e "$T/dl2/blob.bin" ] || it_fail "a QUIC connection with another SNI was forwarded"
[ "$(stat kernel.dropped)" -ge 1 ] || it_fail "the other SNI was not dropped in the queue"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
