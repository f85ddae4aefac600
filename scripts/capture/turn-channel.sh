#!/bin/bash
# Regenerates tests/data/pcap/turn-channel.pcap: coturn turnutils_uclient
# allocating on turnserver (long-term credentials) and relaying to
# turnutils_peer through a channel: STUN Allocate/CreatePermission/ChannelBind
# transactions followed by TURN ChannelData messages (client <-> server only;
# the relay <-> peer leg is not captured).
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

umx_capture_start turn-channel.pcap "udp port 3478"
timeout 30 turnserver -n --listening-ip=127.0.0.1 --listening-port=3478 \
    --relay-ip=127.0.0.1 --min-port=49152 --max-port=49200 --no-tls --no-dtls --no-cli --no-tcp \
    --lt-cred-mech --user=umx:secret --realm=example.test --allow-loopback-peers \
    --log-file=stdout --simple-log --pidfile="$UMX_TMP/turn.pid" --userdb="$UMX_TMP/turn.db" \
    >"$UMX_TMP/turn.log" 2>&1 &
timeout 30 turnutils_peer -L 127.0.0.1 -p 3480 >"$UMX_TMP/peer.log" 2>&1 &
umx_wait_udp 3478
umx_wait_udp 3480
sleep 0.3
timeout 10 turnutils_uclient -c -n 4 -l 60 -m 1 -u umx -w secret -e 127.0.0.1 -r 3480 \
    -p 3478 127.0.0.1 >"$UMX_TMP/uclient.log" 2>&1 || true
umx_capture_stop
