#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-wg-sessions.sh - #12: WireGuard sessions outlive flows. Two wireguard-go
# servers behind one port, told apart by `wireguard pubkey=` (A first); a
# client of B goes idle past the flow's idle timeout, then sends data. Its
# first packet must reach B at once, with no new handshake, and A must get
# nothing. Before the fix the data packet (no flow) matched route A on
# structure, a new flow pinned the client to A, and its retried handshakes
# followed the pin: B's tunnel stayed down for 41 s and more.
. "$(dirname "$0")/lib.sh"
it_init "$@"

# server A: a third wireguard-go device with a key of its own
it_private_dir /run/wireguard
(umask 077 && wg genkey >"$T/ka")
wg pubkey <"$T/ka" >"$T/pa"
WG_PROCESS_FOREGROUND=1 it_bg wga 120 wireguard-go -f wga
for i in $(seq 1 100); do
    [ -S /run/wireguard/wga.sock ] && break
    sleep 0.05
done
wg set wga listen-port 5830 private-key "$T/ka"
ip link set wga up
# server B (wg0 on 5820) and its client (wg1 on 5821, through the mux)
it_wg_pair 5820 5821 "127.0.0.1:$IT_PORT"
it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route wga]
match = wireguard pubkey=$(cat "$T/pa")
forward = 127.0.0.1:5830
idle-timeout = 2s
unanswered-timeout = 2s

[route wgb]
match = wireguard pubkey=$(cat "$T/p0")
forward = 127.0.0.1:5820
idle-timeout = 2s
unanswered-timeout = 2s
CONF
it_daemon "$T/udpmux.conf"
route_rx() {
    timeout 5 "$UDPMUXCTL" -s "$T/control.sock" -j routes |
        /usr/bin/python3 -c 'import json,sys
for r in json.load(sys.stdin)["routes"]:
    if r["name"] == sys.argv[1]: print(r.get("rx.datagrams", 0))' "$1"
}

it_wg_wait_handshake wg0
[ "$(it_wg_handshake wg0)" != 0 ] || it_fail "no handshake between the client and B"
# quiet: no keepalives, so the flow idles out (idle-timeout 2 s)
wg set wg1 peer "$(cat "$T/p0")" persistent-keepalive 0
hs=$(it_wg_handshake wg0)
sleep 4.5
flows=$(timeout 5 "$UDPMUXCTL" -s "$T/control.sock" flows | grep -c wgb || true)
it_eq "$flows" 0 "client flows left after the idle timeout"
read -r rx0 _ <<<"$(it_wg_transfer wg0)"
t0=$(it_now_ms)
it_wg_poke
ok=0
for i in $(seq 1 20); do
    read -r rx1 _ <<<"$(it_wg_transfer wg0)"
    [ "$rx1" -gt "$rx0" ] && { ok=1; break; }
    sleep 0.1
done
[ "$ok" = 1 ] || it_fail "the idle client's data did not reach B within 2 s"
it_log "B got the idle client's data after $(($(it_now_ms) - t0)) ms"
it_eq "$(it_wg_handshake wg0)" "$hs" "B's latest handshake (no new one was needed)"
it_eq "$(route_rx wga)" 0 "datagrams route A received"
it_pass
