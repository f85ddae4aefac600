#!/bin/bash
# sec-sizes.sh - C8: byte-exact or counted. Every size 0..1599 and a sweep
# up to the maximum (65507 over IPv4, 65527 over IPv6), plus 0, 1, 1232,
# 1472, 1473, 8192, 65507, goes client -> udpmuxd -> backend (echo) ->
# udpmuxd -> client and must come back with the same SHA-256; a datagram
# that does not come back must be counted by the daemon (truncation, kernel
# drops, send errors), and none may come back altered or cut.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
it_init "$@"

it_bg be4 200 $SEC_PY echo --listen 127.0.0.1:5001 --seconds 190
it_bg be6 200 $SEC_PY echo --listen "[::1]:5002" --seconds 190
it_wait_udp 5002
it_wait_udp 5001
# one route for everything (zero-length datagrams included) to the IPv4
# backend; clients of both families
run_sweep()
{
    local to=$1 want_max=$2 res tested ok lost corrupt maxok nlost
    res=$($SEC_PY sizes --to "$to" --sizes sweep --timeout 1 --max-seconds 150)
    tested=$(echo "$res" | sec_json tested)
    ok=$(echo "$res" | sec_json ok)
    lost=$(echo "$res" | sec_json lost)
    corrupt=$(echo "$res" | sec_json corrupt)
    maxok=$(echo "$res" | sec_json max_ok)
    it_log "$to via $3: $ok of $tested sizes byte-exact, largest $maxok, lost $lost, altered $corrupt"
    it_eq "$corrupt" "[]" "datagrams that came back altered or cut ($to)"
    nlost=$(echo "$lost" | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
    sec_le "$nlost" "$(counted)" "lost datagrams not counted by the daemon ($to)"
    sec_ge "$ok" $((tested - 5)) "byte-exact sizes ($to)"
    it_eq "$maxok" "$want_max" "largest datagram ($to via $3)"
    LOST=$nlost
}

counted()
{
    echo $(($(sec_stat rx.truncated) + $(sec_stat rx.kernel_drops) + $(sec_stat tx.errors) +
        $(sec_stat upstream.tx.errors) + $(sec_stat upstream.rx.errors)))
}

# each family to a backend of the same family: everything byte-exact, up
# to the largest datagram of the family
for fam in 4 6; do
    if [ $fam = 4 ]; then la=127.0.0.1:4000 be=127.0.0.1:5001 max=65507
    else la="[::1]:4000" be="[::1]:5002" max=65527; fi
    it_conf "$T/sz$fam.conf" <<EOC
[listen]
address = $la

[route all]
match = any
forward = $be
EOC
    it_daemon "$T/sz$fam.conf" "d$fam"
    run_sweep "$la" "$max" "$be"
    it_eq "$LOST" 0 "datagrams lost over IPv$fam"
    it_eq "$(sec_stat rx.truncated)" 0 "truncated datagrams (receive buffers are 64 KiB)"
    sec_no_refused "d$fam"
    it_stop "d$fam"
done

# an IPv6 client's 65527-byte datagram cannot go on to an IPv4 backend
# (65507 is IPv4's maximum): it must be dropped and counted, not cut
it_conf "$T/mixed.conf" <<EOC
[listen]
address = [::1]:4000

[route all]
match = any
forward = 127.0.0.1:5001
EOC
it_daemon "$T/mixed.conf" mixed
run_sweep "[::1]:4000" 65507 "127.0.0.1:5001"
it_eq "$LOST" 2 "sizes above 65507 towards an IPv4 backend (65526, 65527)"
sec_ge "$(sec_stat upstream.tx.errors)" 2 "upstream.tx.errors for them"
it_pass
