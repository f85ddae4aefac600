#!/bin/bash
# Regenerates tests/data/pcap/zrtp.pcap: CRAFTED. No ZRTP implementation in Debian 12 is usable headless
# (libzrtpcpp has no CLI); ZRTP Hello/HelloACK/Commit/Conf2ACK per RFC 6189
# with correct CRC-32C trailers.
# The datagrams are built by crafted.py (see the function there for the
# spec sections followed) and sent between two sockets on 127.0.0.1, so the
# pcap is a genuine loopback capture of crafted payloads.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

here=$(cd "$(dirname "$0")" && pwd)
umx_capture_start zrtp.pcap "udp port 5008"
timeout 10 /usr/bin/python3 "$here/crafted.py" zrtp 5008
umx_capture_stop
