#!/bin/bash
# Regenerates every capture in tests/data/pcap, one script at a time (each
# in its own network namespace), then mixed.pcap/mixed.expected.
# Needs root and the Debian packages named in each script's header.
# Frame numbers change on a rerun: check tests/data/pcap/MANIFEST again
# (run the crossmatch unit test) before committing regenerated captures.
set -u
here=$(cd "$(dirname "$0")" && pwd)
rc=0
for s in dns stun stun-classic turn-channel openvpn wireguard quic ntp snmp tftp syslog sip coap dtls rtp \
    bittorrent radius ssdp zrtp zrtp-linphone raknet teamspeak ike ike-real "ike-real v1" "ike-real natt" webrtc negative edge; do
    echo "== $s"
    args=()
    case $s in *" "*) read -r -a args <<<"${s#* }" ;; esac
    timeout -k 5 200 bash "$here/${s%% *}.sh" "${args[@]}" || { echo "$s failed" >&2; rc=1; }
done
timeout 120 bash "$here/mixed.sh" "$@" || rc=1
exit $rc
