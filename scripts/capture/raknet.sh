#!/bin/bash
# Regenerates tests/data/pcap/raknet.pcap: CRAFTED. RakNet is not packaged for Debian; offline
# handshake (unconnected ping/pong, open connection request/reply 1 and 2)
# plus one connected frame set and its ACK, as a Minecraft Bedrock client
# and server exchange them.
# The datagrams are built by crafted.py (see the function there for the
# spec sections followed) and sent between two sockets on 127.0.0.1, so the
# pcap is a genuine loopback capture of crafted payloads.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

here=$(cd "$(dirname "$0")" && pwd)
umx_capture_start raknet.pcap "udp port 19132"
timeout 10 /usr/bin/python3 "$here/crafted.py" raknet 19132
umx_capture_stop
