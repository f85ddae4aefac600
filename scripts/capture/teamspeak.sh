#!/bin/bash
# Regenerates tests/data/pcap/teamspeak.pcap: CRAFTED. TeamSpeak 3 is proprietary and not in
# Debian; the four unencrypted TS3INIT1 handshake steps 0-3.
# The datagrams are built by crafted.py (see the function there for the
# spec sections followed) and sent between two sockets on 127.0.0.1, so the
# pcap is a genuine loopback capture of crafted payloads.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

here=$(cd "$(dirname "$0")" && pwd)
umx_capture_start teamspeak.pcap "udp port 9987"
timeout 10 /usr/bin/python3 "$here/crafted.py" teamspeak 9987
umx_capture_stop
