#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-kernel-wg-local.sh - a WireGuard client on udpmuxd's own host, through
# a kernel route, moves to a new port. Its datagrams never arrive on an
# interface: they leave through the output hook, where chain queue-out
# queues the new flow, keeps its first datagrams in line and takes the
# proof datagrams (2nd/3rd after the answer) that teach the session index,
# and come back on loopback, where chain queue lets them pass (queue-out
# saw them). The move must find the same backend by that index
# (kernel.roamed) with no new handshake, as for a client on another host
# (it-kernel-wireguard).
#
#   [udpmuxd 10.1.0.1:PORT on lo, wg1's socket] 10.2.0.1 --- 10.2.0.2:5820 be ns (wg0)
#   wg1's tun device (10.9.0.2) in child ns wgc
. "$(dirname "$0")/lib.sh"
it_init "$@"
it_child_ns be 10.2.0.1 10.2.0.2
sysctl -qw net.ipv4.ip_forward=1
ip link set lo up
ip addr add 10.1.0.1/32 dev lo

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 10.1.0.1:$IT_PORT

[route wireguard]
match = wireguard
forward = 10.2.0.2:5820
datapath = kernel
CONF
it_daemon "$T/udpmux.conf"

it_wg_devices be "" 5820 5821 "10.1.0.1:$IT_PORT"
ip -n "$(it_ns be)" addr add 10.9.0.1/24 dev wg0
ip -n "$(it_ns be)" link set wg0 up
it_wg_client_tun

ctl() { timeout 5 "$UDPMUXCTL" -s "$T/control.sock" "$@"; }
stat() { ctl stats | tr ' ' '\n' | sed -n "s/^$1=//p"; }

it_wg_wait_handshake wg1
[ "$(it_wg_handshake wg1)" != 0 ] || it_fail "no handshake through the kernel route from a local client"
sleep 1.2
it_eq "$(stat kernel.queued)" "1" "one new flow: the handshake initiation, queued in queue-out"
[ "$(stat kernel.keys_learnt)" -ge 1 ] ||
    it_fail "no session index learnt from the local client's proof datagrams (queue-out)"
it_eq "$(stat rx.datagrams)" "0" "the workers saw none of the tunnel"
ct=$(conntrack -L -p udp --orig-port-src 5821 2>/dev/null)
it_contains "$ct" "src=10.2.0.2 dst=10.2.0.1 sport=5820" "a kernel flow from the local client to the backend"
hs_before=$(it_wg_handshake wg1)

it_log "moving wg1 from port 5821 to 5822"
it_wg_move 5822
it_eq "$(stat kernel.roamed)" "1" "the new port got its kernel flow by the session index"
it_eq "$(it_wg_handshake wg1)" "$hs_before" "no new handshake"
ct=$(conntrack -L -p udp --orig-port-src 5822 2>/dev/null)
it_contains "$ct" "src=10.2.0.2 dst=10.2.0.1 sport=5820" "a kernel flow from the new port to the same backend"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
