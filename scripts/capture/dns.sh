#!/bin/bash
# Regenerates tests/data/pcap/dns.pcap: dig and kdig querying dnsmasq on
# 127.0.0.1:5300 (A, AAAA, TXT, MX, with and without EDNS, one REFUSED), and
# nsupdate sending a DNS UPDATE (opcode 5) that dnsmasq refuses.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

umx_capture_start dns.pcap "udp port 5300"
timeout 20 dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts \
    --listen-address=127.0.0.1 --bind-interfaces --port=5300 --user=root \
    --address=/www.example.test/192.0.2.10 --address=/www.example.test/2001:db8::10 \
    --txt-record=txt.example.test,"udpmux test record" \
    --mx-host=example.test,mail.example.test,10 --pid-file="$UMX_TMP/dnsmasq.pid" \
    2>"$UMX_TMP/dnsmasq.log" &
umx_wait_udp 5300
timeout 5 dig @127.0.0.1 -p 5300 +tries=1 +time=2 www.example.test A >/dev/null
timeout 5 dig @127.0.0.1 -p 5300 +tries=1 +time=2 +noedns www.example.test AAAA >/dev/null
timeout 5 dig @127.0.0.1 -p 5300 +tries=1 +time=2 txt.example.test TXT >/dev/null
timeout 5 kdig @127.0.0.1 -p 5300 +retry=0 +time=2 example.test MX >/dev/null
timeout 5 kdig @127.0.0.1 -p 5300 +retry=0 +time=2 +nsid nosuch.example.test A >/dev/null
timeout 5 kdig @127.0.0.1 -p 5300 +retry=0 +time=2 +noedns www.example.test A >/dev/null
printf 'server 127.0.0.1 5300\nzone example.test\nupdate add new.example.test 60 A 192.0.2.99\nsend\n' |
    timeout 5 nsupdate -t 2 -u 2 -r 0 >/dev/null 2>&1 || true
umx_capture_stop
