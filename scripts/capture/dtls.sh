#!/bin/bash
# Regenerates tests/data/pcap/dtls.pcap: OpenSSL 3.0 s_server/s_client over
# 127.0.0.1:4740: a DTLS 1.2 handshake with a cookie exchange
# (HelloVerifyRequest), then a few lines of application data both ways, then
# close_notify; then a second connection forced to DTLS 1.0 (-dtls1, which
# OpenSSL 3 only allows at @SECLEVEL=0).
# SNI "dtls.example.test" is sent by the client.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

cd "$UMX_TMP"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=dtls.example.test -keyout srv.key -out srv.crt 2>/dev/null

one_session()
{
    # $1: extra client args
    (sleep 1; printf 'hello from dtls server\n'; sleep 1.5) |
        timeout 6 openssl s_server -dtls -accept 127.0.0.1:4740 -cert srv.crt -key srv.key \
            -listen -quiet -naccept 1 -cipher DEFAULT:@SECLEVEL=0 >srv.log 2>&1 &
    local srv=$!
    umx_wait_udp 4740
    (sleep 0.6; printf 'hello from dtls client\n'; sleep 0.3; printf 'second line\n'; sleep 1.5) |
        timeout 5 openssl s_client $1 -connect 127.0.0.1:4740 -servername dtls.example.test \
            -quiet >cli.log 2>&1 || { echo "s_client $1 failed" >&2; tail -n 3 cli.log >&2; }
    wait "$srv" || true
}

umx_capture_start dtls.pcap "udp port 4740"
one_session "-dtls1_2"
one_session "-dtls1 -cipher DEFAULT:@SECLEVEL=0"
umx_capture_stop
