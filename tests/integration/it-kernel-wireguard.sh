#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-kernel-wireguard.sh - wireguard-go through a kernel route, with a
# client that moves mid-session. Server (wg0) and client (wg1) each run in
# their own namespace; udpmuxd's queue sees the handshake initiation (a new
# flow); the tunnel's data never
# reaches udpmuxd, except the client's first datagrams after the response
# (the table queues the 2nd and 3rd of a roaming route's flow once the
# backend answered: they prove the peer receives the answers and carry the
# receiver index the server gave). The client then re-binds to a new port: its next
# datagram is a new conntrack flow, and udpmuxd finds its session by the
# receiver index (kernel.roamed) and gives it a kernel flow to the same
# backend, without a new handshake. Then a new session on the running flow
# (what a rekey does every two minutes: the client drops its session and
# handshakes again from the same port, a conntrack flow long past its 3rd
# datagram): the table queues the server's handshake response after the
# NAT (chain learn), udpmuxd learns the new index (kernel.reply_keys), and
# a second move with that index finds the same backend again.
#
#   cli ns (wg1 10.9.0.2) 10.1.0.2 --- 10.1.0.1:4000 [udpmuxd] 10.2.0.1 --- 10.2.0.2:5820 be ns (wg0 10.9.0.1)
. "$(dirname "$0")/lib.sh"
it_init "$@"
it_child_ns cli 10.1.0.1 10.1.0.2
it_child_ns be 10.2.0.1 10.2.0.2
sysctl -qw net.ipv4.ip_forward=1

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 10.1.0.1:$IT_PORT

[route dns]
match = dns
forward = 10.2.0.2:53
datapath = kernel

[route wireguard]
match = wireguard
forward = 10.2.0.2:5820
datapath = kernel
CONF
it_daemon "$T/udpmux.conf"

it_wg_pair_ns be cli 5820 5821 "10.1.0.1:$IT_PORT"

ctl() { timeout 5 "$UDPMUXCTL" -s "$T/control.sock" "$@"; }
stat() { ctl stats | tr ' ' '\n' | sed -n "s/^$1=//p"; }

it_wg_wait_handshake wg0
[ "$(it_wg_handshake wg1)" != 0 ] || it_fail "no handshake through the kernel route"
sleep 1.2
it_eq "$(stat kernel.queued)" "1" "one new flow: the handshake initiation"
[ "$(stat kernel.replies)" -le 2 ] || it_fail "more than two proof datagrams queued"
[ "$(stat kernel.keys_learnt)" -ge 1 ] || it_fail "no session index learnt from the client's proof datagrams"
it_eq "$(stat rx.datagrams)" "0" "the workers saw none of the tunnel"
hs_before=$(it_wg_handshake wg1)

it_log "moving wg1 from port 5821 to 5822"
it_wg_move 5822
it_eq "$(stat kernel.roamed)" "1" "the new address got its kernel flow by the session index"
it_eq "$(it_wg_handshake wg1)" "$hs_before" "no new handshake"
ct=$(conntrack -L -p udp --orig-port-src 5822 2>/dev/null)
it_contains "$ct" "src=10.2.0.2 dst=10.2.0.1 sport=5820" "a kernel flow from the new port to the same backend"

# past 17 datagrams the flow is steady (KERNEL|USER in its ct mark, nft.c
# steady_rule): the rekey below must still be learnt from it
for i in $(seq 1 20); do it_wg_poke; done
mark=$(sed -n 's/.*mark=\([0-9]*\).*/\1/p' <<<"$(conntrack -L -p udp --orig-port-src 5822 2>/dev/null)")
[ $(((mark >> 16) & 0x3000)) = $((0x3000)) ] || it_fail "the flow from 5822 is not steady: mark $mark"
it_log "a new session from port 5822 (a rekey), then a move to port 5823"
hs_prev=$(it_wg_handshake wg1)
rk0=$(stat kernel.reply_keys)
q0=$(stat kernel.queued)
wg set wg1 peer "$(cat "$T/p0")" remove
wg set wg1 peer "$(cat "$T/p0")" allowed-ips 10.9.0.1/32 endpoint "10.1.0.1:$IT_PORT" \
    persistent-keepalive 1
sleep 1.1 # handshake times have a resolution of one second
for i in $(seq 1 50); do
    it_wg_poke
    h=$(it_wg_handshake wg1)
    [ "$h" != 0 ] && [ "$h" != "$hs_prev" ] && break
    sleep 0.2
done
[ "$(it_wg_handshake wg1)" != "$hs_prev" ] || it_fail "no new handshake from port 5822"
for i in $(seq 1 20); do
    [ "$(stat kernel.reply_keys)" -gt "$rk0" ] && break
    sleep 0.1
done
it_log "handshakes=$(stat kernel.handshakes) reply_keys=$rk0 -> $(stat kernel.reply_keys) queued=$(stat kernel.queued)"
it_eq "$(stat kernel.queued)" "$q0" "the rekey is no new flow"
hs_before=$(it_wg_handshake wg1)
it_wg_move 5823
it_eq "$(stat kernel.roamed)" "2" "the move after the rekey found its backend by the new index"
it_eq "$(it_wg_handshake wg1)" "$hs_before" "no new handshake after the second move"
ct=$(conntrack -L -p udp --orig-port-src 5823 2>/dev/null)
it_contains "$ct" "src=10.2.0.2 dst=10.2.0.1 sport=5820" "a kernel flow from port 5823 to the same backend"
# learnt from the server's handshake response; only handshake datagrams
# are queued, never the tunnel's data
[ "$(stat kernel.reply_keys)" -gt "$rk0" ] || it_fail "the server's new handshake response taught no index"
[ "$(stat kernel.handshakes)" -le 4 ] || it_fail "more than the handshakes queued: $(stat kernel.handshakes)"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
