#!/bin/bash
# Regenerates tests/data/pcap/ssdp.pcap: miniupnpd 2.3.1 (Debian
# miniupnpd-nftables; UPnP IGD daemon, run in the foreground with a private
# config) announcing itself with SSDP NOTIFY ssdp:alive to
# 239.255.255.250:1900, and miniupnpc's upnpc 2.2.4 searching for it with
# M-SEARCH from a child netns, answered by miniupnpd's unicast HTTP/1.1 200 OK
# (upnpc's follow-up SOAP over TCP is not captured), then NOTIFY ssdp:byebye
# when miniupnpd is stopped. Topology: veth
# umx1 (10.66.0.1, miniupnpd's LAN side, this netns) <-> umx0 (10.66.0.2,
# the client's netns); a second veth pair provides miniupnpd's "external"
# interface. Captured on umx1.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

cd "$UMX_TMP"
ip link add umx0 type veth peer name umx1
ip link add umx2 type veth peer name umx3
ip addr add 10.66.0.1/24 dev umx1
ip addr add 192.0.2.1/24 dev umx2
for l in umx1 umx2 umx3; do ip link set "$l" up; done
ip route add 239.0.0.0/8 dev umx1
cat >miniupnpd.conf <<CONF
ext_ifname=umx2
listening_ip=umx1
http_port=5555
enable_natpmp=no
enable_upnp=yes
secure_mode=yes
system_uptime=yes
notify_interval=60
uuid=2fac1234-31f8-11b4-a222-08002b34c003
allow 1024-65535 10.0.0.0/8 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
CONF
unshare -n sleep 20 & # bounded; its pid owns the client netns
client=$!
sleep 0.3
ip link set umx0 netns "$client"
nsenter -t "$client" -n ip link set lo up
nsenter -t "$client" -n ip addr add 10.66.0.2/24 dev umx0
nsenter -t "$client" -n ip link set umx0 up
nsenter -t "$client" -n ip route add 239.0.0.0/8 dev umx0

UMX_CAPTURE_IF=umx1 umx_capture_start ssdp.pcap "udp port 1900"
timeout 8 miniupnpd -d -f "$UMX_TMP/miniupnpd.conf" -P "$UMX_TMP/miniupnpd.pid" \
    >miniupnpd.log 2>&1 &
mu=$!
sleep 1.5
timeout 5 nsenter -t "$client" -n upnpc -m umx0 -s >upnpc.log 2>&1 || true
sleep 0.5
kill "$mu" 2>/dev/null || true # SIGTERM: miniupnpd says goodbye (ssdp:byebye)
wait "$mu" 2>/dev/null || true
umx_capture_stop
grep -q "HTTP/1.1 200 OK\|desc" upnpc.log || grep -m3 -i "igd\|found" upnpc.log >&2 || true
