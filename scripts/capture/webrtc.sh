#!/bin/bash
# Regenerates tests/data/pcap/webrtc.pcap: a WebRTC session between two
# aiortc 1.4.0 peer connections (python3-aiortc, aioice 0.8.0; see
# webrtc.py): ICE connectivity checks (STUN with USERNAME, PRIORITY,
# ICE-CONTROLLING/CONTROLLED, MESSAGE-INTEGRITY, FINGERPRINT), DTLS 1.2
# handshake, SRTP audio (Opus) and SRTCP multiplexed on the same ports
# (RFC 5761/7983), and SCTP-over-DTLS data channel messages. aioice ignores
# loopback addresses, so the netns gets a veth pair with 10.88.0.1/24; the
# peers talk to that local address, which the kernel delivers over lo.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

ip link add umx0 type veth peer name umx1
ip addr add 10.88.0.1/24 dev umx0
ip link set umx0 up
ip link set umx1 up
here=$(cd "$(dirname "$0")" && pwd)
umx_capture_start webrtc.pcap "udp and host 10.88.0.1"
timeout 20 /usr/bin/python3 "$here/webrtc.py" || echo "webrtc.py failed" >&2
umx_capture_stop
