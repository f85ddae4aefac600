#!/bin/bash
# Regenerates tests/data/pcap/quic.pcap: ngtcp2 example client/server
# (Debian ngtcp2-client/ngtcp2-server, GnuTLS builds gtlsclient/gtlsserver)
# over 127.0.0.1:4433, one HTTP/3 GET per connection, SNI
# "quic.example.test" (resolved through a private /etc/hosts in a private
# mount namespace). Connection 1 is QUIC v1, connection 2 QUIC v2 *draft*
# (0x709a50c4: Debian 12's ngtcp2 0.12.1 predates the final RFC 9369 v2
# codepoint 0x6b3343cf), connection 3 starts with v1 and is upgraded to
# v2draft by compatible version negotiation (RFC 9368), connection 4 starts
# with the reserved version 0x1a2a3a4a and gets a Version Negotiation packet,
# then retries with v1, and connection 5 goes to a second server with address
# validation (--validate-addr), which answers the first Initial with Retry.
# ngtcp2 also greases the QUIC bit (RFC 9287) once both ends allow it.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
if [ -z "${UMX_IN_MNTNS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "$0: needs root" >&2; exit 1; }
    UMX_IN_MNTNS=1 exec timeout -k 5 180 unshare -m -- bash "$0" "$@"
fi
mount --make-rprivate /
umx_enter_netns "$@"

cd "$UMX_TMP"
printf '127.0.0.1 localhost quic.example.test\n' >hosts
mount --bind hosts /etc/hosts
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=quic.example.test -addext subjectAltName=DNS:quic.example.test \
    -keyout srv.key -out srv.crt 2>/dev/null
mkdir -p htdocs
printf 'hello from udpmux\n' >htdocs/index.html

umx_capture_start quic.pcap "udp port 4433 or udp port 4434"
timeout 40 gtlsserver --quiet -d htdocs --preferred-versions=v2draft,v1 127.0.0.1 4433 \
    srv.key srv.crt >srv.log 2>&1 &
timeout 40 gtlsserver --quiet -d htdocs --validate-addr 127.0.0.1 4434 srv.key srv.crt \
    >srv-retry.log 2>&1 &
umx_wait_udp 4433
umx_wait_udp 4434
n=0
for v in "" "--version=v2draft" "--version=v1 --other-versions=v2draft,v1 --preferred-versions=v2draft,v1" \
    "--version=0x1a2a3a4a --preferred-versions=v1" "port4434"; do
    n=$((n + 1))
    port=4433
    if [ "$v" = port4434 ]; then
        v=""
        port=4434
    fi
    # shellcheck disable=SC2086
    timeout 5 gtlsclient --quiet --exit-on-all-streams-close $v quic.example.test $port \
        https://quic.example.test:$port/index.html >"cli$n.log" 2>&1 ||
        { echo "gtlsclient $v (port $port) failed" >&2; tail -n 3 "cli$n.log" >&2; }
    sleep 0.2
done
umx_capture_stop
