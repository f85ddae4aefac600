#!/bin/bash
# Regenerates tests/data/pcap/negative.pcap: UDP traffic of real programs
# that speak none of the probed protocols, so every datagram must match no
# probe (or only a collision documented in MANIFEST):
#   - iperf3 3.12 UDP test (-u, 1 s, 64 kbit/s, 200-byte datagrams): the
#     client's test stream to 127.0.0.1:5201 (the control connection is TCP);
#   - traceroute 2.1 UDP probes (default method, 32-byte payloads from
#     port 33434 upwards) toward 127.0.0.1;
#   - socat sending a line of text, and a block of zero bytes.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

cd "$UMX_TMP"
umx_capture_start negative.pcap "udp and not port 53"
timeout 15 iperf3 -s -1 -B 127.0.0.1 -p 5201 >iperf-s.log 2>&1 &
srv=$!
sleep 0.5
timeout 10 iperf3 -c 127.0.0.1 -p 5201 -u -b 64k -l 200 -t 1 >iperf-c.log 2>&1 ||
    echo "iperf3 client failed" >&2
wait "$srv" || true
timeout 10 traceroute -n -q 1 -m 2 -w 1 127.0.0.1 >traceroute.log 2>&1 || true
timeout 5 socat -u - UDP4-SENDTO:127.0.0.1:9999 <<<"hello, this is not any protocol" || true
head -c 64 /dev/zero | timeout 5 socat -u - UDP4-SENDTO:127.0.0.1:9999 || true
umx_capture_stop
