#!/bin/bash
# Regenerates tests/data/pcap/coap.pcap: libcoap 4.3.1 (Debian libcoap3-bin)
# coap-server-notls on 127.0.0.1:5683 and coap-client-notls: CON GET
# /.well-known/core (block-wise), GET /time, NON GET, PUT /example_data, DELETE,
# GET of a missing resource (4.04). The 2-digit MIDs and tokens are random.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

cd "$UMX_TMP"
umx_capture_start coap.pcap "udp port 5683"
timeout 20 coap-server-notls -A 127.0.0.1 -p 5683 -v 0 >server.log 2>&1 &
umx_wait_udp 5683
C="timeout 5 coap-client-notls -B 3 -v 0"
# (-T sets a 4-byte token)
$C coap://127.0.0.1:5683/.well-known/core >/dev/null
$C -T 5a1b coap://127.0.0.1:5683/time >/dev/null
$C -N coap://127.0.0.1:5683/ >/dev/null
$C -m put -e 'udpmux=1' coap://127.0.0.1:5683/example_data >/dev/null
$C -m get coap://127.0.0.1:5683/example_data >/dev/null
$C -m delete coap://127.0.0.1:5683/example_data >/dev/null || true
$C coap://127.0.0.1:5683/no/such/resource >/dev/null || true
umx_capture_stop
