#!/bin/bash
# Regenerates tests/data/pcap/ike.pcap: CRAFTED. strongSwan's charon is packaged but needs a
# full PKI/PSK setup and root-owned runtime dirs; IKEv2 IKE_SA_INIT request and
# response (SA, KE, Nonce, NAT-D notifies) and an encrypted INFORMATIONAL
# pair per RFC 7296.
# The datagrams are built by crafted.py (see the function there for the
# spec sections followed) and sent between two sockets on 127.0.0.1, so the
# pcap is a genuine loopback capture of crafted payloads.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

here=$(cd "$(dirname "$0")" && pwd)
umx_capture_start ike.pcap "udp port 500"
timeout 10 /usr/bin/python3 "$here/crafted.py" ike 500
umx_capture_stop
