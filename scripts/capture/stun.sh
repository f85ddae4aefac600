#!/bin/bash
# Regenerates tests/data/pcap/stun.pcap: coturn's turnutils_stunclient sending
# RFC 5389/8489 Binding requests (plain, with CHANGE-REQUEST, and RFC 5780
# behaviour discovery) to coturn turnserver on 127.0.0.1:3478.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

ip addr add 127.0.0.2/8 dev lo 2>/dev/null || true
umx_capture_start stun.pcap "udp port 3478 or udp port 3479"
timeout 30 turnserver -n --listening-ip=127.0.0.1 --listening-ip=127.0.0.2 \
    --listening-port=3478 --alt-listening-port=3479 --relay-ip=127.0.0.1 --no-tls --no-dtls \
    --no-cli --no-tcp --realm=example.test --log-file=stdout --simple-log \
    --pidfile="$UMX_TMP/turn.pid" --userdb="$UMX_TMP/turn.db" >"$UMX_TMP/turn.log" 2>&1 &
umx_wait_udp 3478
sleep 0.3
timeout 5 turnutils_stunclient -p 3478 127.0.0.1 >"$UMX_TMP/c1.log" 2>&1 || true
timeout 5 turnutils_stunclient -p 3478 -c 127.0.0.1 >"$UMX_TMP/c2.log" 2>&1 || true
umx_capture_stop
