#!/bin/bash
# Regenerates tests/data/pcap/wireguard.pcap: two wireguard-go instances
# (wg0, wg1) whose UDP sockets listen on 127.0.0.1:51820/51821 of a private
# netns; wg1's tun device is moved into a child netns so that a bounded burst
# of datagrams from 10.9.0.2 to 10.9.0.1 really crosses the tunnel: handshake initiation
# (148 bytes), response (92), transport data and keepalives (type 4).
# Also runs in a private mount namespace so wireguard-go's UAPI sockets
# (/var/run/wireguard) stay private.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
if [ -z "${UMX_IN_MNTNS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "$0: needs root" >&2; exit 1; }
    UMX_IN_MNTNS=1 exec timeout -k 5 180 unshare -m -- bash "$0" "$@"
fi
mount --make-rprivate /
mkdir -p /var/run/wireguard
mount -t tmpfs tmpfs /var/run/wireguard
umx_enter_netns "$@"

cd "$UMX_TMP"
umask 077
wg genkey >k0; wg pubkey <k0 >p0
wg genkey >k1; wg pubkey <k1 >p1

umx_capture_start wireguard.pcap "udp port 51820 or udp port 51821"
WG_PROCESS_FOREGROUND=1 timeout 30 wireguard-go -f wg0 >wg0.log 2>&1 &
WG_PROCESS_FOREGROUND=1 timeout 30 wireguard-go -f wg1 >wg1.log 2>&1 &
for _ in $(seq 1 50); do
    [ -S /var/run/wireguard/wg0.sock ] && [ -S /var/run/wireguard/wg1.sock ] && break
    sleep 0.1
done
wg set wg0 listen-port 51820 private-key k0 peer "$(cat p1)" allowed-ips 10.9.0.2/32 \
    endpoint 127.0.0.1:51821
wg set wg1 listen-port 51821 private-key k1 peer "$(cat p0)" allowed-ips 10.9.0.1/32 \
    endpoint 127.0.0.1:51820 persistent-keepalive 1
ip addr add 10.9.0.1/24 dev wg0
ip link set wg0 up

# child netns for the wg1 tun device (its UDP socket stays here, on lo)
unshare -n sleep 25 & # sleep bounds itself; its pid owns the child netns
child=$!
sleep 0.3
ip link set wg1 netns "$child"
nsenter -t "$child" -n ip link set lo up
nsenter -t "$child" -n ip addr add 10.9.0.2/24 dev wg1
nsenter -t "$child" -n ip link set wg1 up
# ping(8) may be missing: send small UDP datagrams through the tunnel with
# bash's /dev/udp; wg0's host answers each with ICMP port unreachable, so
# transport data flows both ways.
for i in 1 2 3; do
    timeout 5 nsenter -t "$child" -n bash -c "echo udpmux-$i >/dev/udp/10.9.0.1/9" || true
    sleep 0.3
done
sleep 2.2 # persistent keepalives (empty type-4 packets, 32 bytes)
umx_capture_stop
wg show wg0 | grep -q handshake || echo "no handshake seen by wg0" >&2
