#!/bin/bash
# Regenerates tests/data/pcap/stun-classic.pcap: the stun-client 0.97 tool
# (Vovida RFC 3489 "classic STUN": no magic cookie, 128-bit transaction id)
# running its NAT type discovery against coturn turnserver, which still
# answers RFC 3489 requests (with MAPPED-ADDRESS, SOURCE-ADDRESS,
# CHANGED-ADDRESS). The stun probe deliberately does not match classic STUN;
# this capture checks that no other probe claims it either.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true
umx_capture_start stun-classic.pcap "udp port 3478 or udp port 3479"
timeout 30 turnserver -n --listening-ip=127.0.0.1 --listening-ip=127.0.0.2 \
    --listening-port=3478 --alt-listening-port=3479 --relay-ip=127.0.0.1 --no-tls --no-dtls \
    --no-cli --no-tcp --realm=example.test --log-file=stdout --simple-log \
    --pidfile="$UMX_TMP/turn.pid" --userdb="$UMX_TMP/turn.db" >"$UMX_TMP/turn.log" 2>&1 &
umx_wait_udp 3478
sleep 0.3
timeout 15 stun 127.0.0.1 -v -i 127.0.0.1 >"$UMX_TMP/stun.log" 2>&1 || true
umx_capture_stop
grep -m1 -iE 'nat|open|blocked' "$UMX_TMP/stun.log" >&2 || true
