#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-roaming.sh - a WireGuard peer changes its source address mid-session
# (wg1 re-binds to a new port, as after a NAT rebinding) and keeps working
# through udpmuxd: the flow follows the peer by its session index, so the
# server keeps seeing the same upstream socket and no new handshake is
# needed.
#
# Why the server's endpoint is the proof: without roaming the datagrams from
# the new port would make a new flow with a new upstream socket, and
# WireGuard (which roams too) would switch wg0's endpoint to that socket.
# With roaming=no the test fails exactly there (checked by hand).
. "$(dirname "$0")/lib.sh"
it_init "$@"

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route wireguard]
match = wireguard
forward = 127.0.0.1:5820
roaming = ${IT_ROAMING:-yes}
CONF
it_daemon "$T/udpmux.conf"
it_wg_pair 5820 5821 "127.0.0.1:$IT_PORT"

it_wg_wait_handshake wg0
[ "$(it_wg_handshake wg1)" != 0 ] || it_fail "no handshake"
sleep 1.2 # a keepalive each way: the flow is established
ep_before=$(wg show wg0 endpoints | awk '{print $2}')
hs_before=$(it_wg_handshake wg1)
it_log "session up, wg0 sees $ep_before; moving wg1 from port 5821 to 5822"

wg set wg1 listen-port 5822
ss -Hun "sport = :5822" >/dev/null
read -r rx0 _ <<<"$(it_wg_transfer wg1)"
for _ in 1 2 3 4 5; do
    it_wg_poke
    sleep 0.3
done
read -r rx1 _ <<<"$(it_wg_transfer wg1)"
ep_after=$(wg show wg0 endpoints | awk '{print $2}')
it_log "after the move: wg0 sees $ep_after, wg1 rx $rx0 -> $rx1"
[ "$rx1" -gt "$rx0" ] || it_fail "no data reached wg1 at its new address"
it_eq "$ep_after" "$ep_before" "wg0's endpoint (the flow's upstream socket)"
it_eq "$(it_wg_handshake wg1)" "$hs_before" "latest handshake (no new one needed)"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
