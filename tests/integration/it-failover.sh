#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-failover.sh - a pool of two backends; clients from sixteen addresses are
# spread over both (rendezvous hashing on the client address; with random
# hash keys all sixteen land on one backend once in 32768 runs, eight did
# once in 128). One backend
# is killed: the next datagram towards it draws ICMP port unreachable
# (ECONNREFUSED on the flow's connected upstream socket), the backend is
# marked down (passive health) and every new flow goes to the survivor.
# IT_UPSTREAM=shared: the same with `upstream = shared` (the error comes
# through the worker's shared socket's error queue).
. "$(dirname "$0")/lib.sh"
it_init "$@"
for i in $(seq 2 16); do ip addr add "127.0.0.$i/8" dev lo 2>/dev/null || true; done

it_echo a 127.0.0.1:5001
it_echo b 127.0.0.1:5002
it_wait_udp 5001
it_wait_udp 5002
it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route pool]
match = any
forward = 127.0.0.1:5001, 127.0.0.1:5002
down-time = 30s
$([ "${IT_UPSTREAM:-}" = shared ] && printf 'upstream = shared\nsource = 127.66.0.0/16\n')
CONF
it_daemon "$T/udpmux.conf"

declare -A first
for i in $(seq 1 16); do
    r=$(it_ask "127.0.0.1:$IT_PORT" "hello-$i" --bind "127.0.0.$i:6000")
    first[$i]=${r%%|*}
    if [ "${IT_UPSTREAM:-}" = shared ]; then
        it_contains "$r" "|from=127.66."
    fi
done
it_log "before: ${first[*]}"
seen=$(printf '%s\n' "${first[@]}" | sort -u | tr '\n' ' ')
it_eq "$seen" "a b " "both backends serve some clients"
# kill the backend of client 1
victim=${first[1]}
survivor=$([ "$victim" = a ] && echo b || echo a)
it_stop "$victim"
it_log "killed $victim"
# client 1's established flow: its datagram is refused by the kernel, which
# is what marks the backend down (no answer expected)
it_ask "127.0.0.1:$IT_PORT" "again-1" --bind 127.0.0.1:6000 --timeout 0.5 >/dev/null 2>&1 || true
sleep 0.2
# new flows from every client address, including those that used the
# victim: all answered, all by the survivor
for i in $(seq 1 16); do
    r=$(it_ask "127.0.0.1:$IT_PORT" "new-$i" --bind "127.0.0.$i:6001" --tries 2 --timeout 1) ||
        it_fail "client $i got no answer after the failover"
    it_eq "${r%%|*}" "$survivor" "backend of client $i's new flow"
done
# clients that were on the survivor keep their established flow
for i in $(seq 1 16); do
    [ "${first[$i]}" = "$survivor" ] || continue
    r=$(it_ask "127.0.0.1:$IT_PORT" "old-$i" --bind "127.0.0.$i:6000")
    it_eq "${r%%|*}" "$survivor" "established flow of client $i"
done
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
