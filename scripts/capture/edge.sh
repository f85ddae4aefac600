#!/bin/bash
# Regenerates tests/data/pcap/edge-cases.pcap, the decoder edge cases for
# `udpmuxctl classify` (not used by test-crossmatch): real traffic of real
# programs captured so that it contains
#   - IPv6 UDP: dig @::1 against dnsmasq (query + response),
#   - IPv4 fragments: logger --udp with a 3000-byte message over a loopback
#     whose MTU is lowered to 1280 (first fragment + non-first fragments),
#   - IPv6 fragments: the same message to ::1,
#   - a non-UDP frame: the ICMP port unreachable answering a datagram sent
#     to a closed port,
#   - frames cut by the snap length: tcpdump -s 120 drops the tail of the
#     datagrams longer than that (the big SIP-like syslog line).
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

cd "$UMX_TMP"
ip link set lo mtu 1280
umx_capture_start edge-cases.pcap "udp or icmp or icmp6"
timeout 20 dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts \
    --listen-address=::1 --bind-interfaces --port=5300 --user=root \
    --address=/v6.example.test/2001:db8::53 --pid-file="$UMX_TMP/dnsmasq.pid" \
    2>"$UMX_TMP/dnsmasq.log" &
timeout 20 socat -u UDP4-RECV:5514,bind=127.0.0.1 OPEN:/dev/null >/dev/null 2>&1 &
timeout 20 socat -u UDP6-RECV:5514,bind=[::1] OPEN:/dev/null >/dev/null 2>&1 &
umx_wait_udp 5300
umx_wait_udp 5514
timeout 5 dig @::1 -p 5300 +tries=1 +time=2 v6.example.test AAAA >/dev/null
big=$(head -c 3000 /dev/zero | tr '\0' 'x')
timeout 5 logger --udp --server 127.0.0.1 --port 5514 --size 4000 --rfc5424 -t umxbig "$big"
timeout 5 logger --udp --server ::1 --port 5514 --size 4000 --rfc3164 -t umxbig6 "$big"
# a datagram to a closed port: the kernel answers ICMP port unreachable
timeout 5 logger --udp --server 127.0.0.1 --port 5599 --rfc3164 -t nobody "to a closed port"
umx_capture_stop
# A second capture with a small snap length, appended: truncated frames.
mv "$UMX_PCAP_OUT" "$UMX_TMP/full.pcap"
timeout 5 tcpdump -i lo -n -s 120 -U --immediate-mode -Z root -w "$UMX_TMP/trunc.pcap" \
    "udp port 5514" 2>"$UMX_TMP/tcpdump2.log" &
t2=$!
sleep 1
timeout 5 logger --udp --server 127.0.0.1 --port 5514 --rfc5424 -t umxtrunc \
    "a syslog message longer than the 120-byte snap length of this second capture, so cut"
sleep 0.5
kill -INT "$t2" 2>/dev/null || true
wait "$t2" 2>/dev/null || true
mergecap -a -F pcap -w "$UMX_PCAP_DIR/edge-cases.pcap" "$UMX_TMP/full.pcap" "$UMX_TMP/trunc.pcap"
chmod 644 "$UMX_PCAP_DIR/edge-cases.pcap"
echo "edge-cases.pcap: $(tcpdump -r "$UMX_PCAP_DIR/edge-cases.pcap" -n 2>/dev/null | wc -l) packets"
