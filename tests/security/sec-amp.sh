#!/bin/bash
# sec-amp.sh - C5, C6: no amplification by the mux, per-prefix response
# rate limit.
#
# Sources are AnyIP addresses of 127.77.0.0/16 (all of 127/8 is local, so
# replies to them come back to the sending socket in this namespace).
# 1. 10000 random datagrams from random sources that match no route: not
#    one datagram comes back.
# 2. STUN binding requests (reply-size = request) and echo requests from
#    2000 sources each: no reply is larger than its request, and reply
#    bytes <= request bytes.
# 3. One /24 floods echo requests at 1000/s for 3 s with response-rate =
#    100: it gets at most rate * time + burst replies, while another /24
#    sending 50/s at the same time gets every one.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
it_init "$@"

IT_WORKERS=1 IT_CONF_EXTRA=$'response-rate = 100' it_conf "$T/amp.conf" <<EOC
[listen]
address = 127.0.0.1:4000

[route stun]
match = stun
action = stun
# the strict setting (the default, minimal, answers 20-byte requests with
# up to 44 bytes under response-rate: see it-stun.sh and C6)
reply-size = request

[route echo]
match = regex "^ECHO"
action = echo
EOC
it_daemon "$T/amp.conf"

res=$($SEC_PY spoof --to 127.0.0.1:4000 --base 127.77.0.0 --n 10000 --kind random \
    --src-port 40000 --settle 1.5)
it_log "unmatched: $res"
it_eq "$(echo "$res" | sec_json replies)" 0 "replies to unmatched datagrams"
unmatched=$(sec_stat classify.unmatched)
drops=$(sec_stat rx.kernel_drops)
it_log "daemon: classify.unmatched=$unmatched rx.kernel_drops=$drops"
sec_ge $((unmatched + drops)) 10000 "unmatched datagrams seen or counted"
it_eq "$(sec_stat tx.datagrams)" 0 "datagrams sent by the daemon"

for kind in stun echo; do
    res=$($SEC_PY spoof --to 127.0.0.1:4000 --base 127.77.0.0 --n 2000 --kind "$kind" \
        --rate 2000 --src-port 40001 --settle 1.5 --seed 7)
    it_log "$kind: $res"
    it_eq "$(echo "$res" | sec_json replies_bigger_than_request)" 0 "$kind replies larger than the request"
    req=$(echo "$res" | sec_json request_bytes)
    rep=$(echo "$res" | sec_json reply_bytes)
    n=$(echo "$res" | sec_json replies)
    sec_le "$rep" "$req" "$kind reply bytes vs request bytes"
    sec_ge "$n" 1300 "$kind replies (the test must see answers)"
done
sec_ge "$(sec_stat drop.stun_too_small)" 1 "STUN requests too small to answer"

# rate limit: one /24 floods, another sends slowly at the same time
limited0=$(sec_stat drop.rate_limited)
$SEC_PY spoof --to 127.0.0.1:4000 --base 127.77.2.0 --prefixes 1 --n 150 --kind echo \
    --rate 50 --src-port 40003 --settle 1.5 --seed 11 >"$T/quiet.json" &
quiet=$!
res=$($SEC_PY spoof --to 127.0.0.1:4000 --base 127.77.1.0 --prefixes 1 --n 3000 --kind echo \
    --rate 1000 --src-port 40002 --settle 1.5 --seed 9)
wait "$quiet"
secs=$(echo "$res" | sec_json seconds)
n=$(echo "$res" | sec_json replies)
# replies allowed: 100/s over the sending time (the settle time adds
# nothing: requests stopped), plus the burst of 2 * rate + 1
max=$(/usr/bin/python3 -c "print(int(100 * ($secs - 1.5 + 0.5) + 201))")
it_log "flooding /24: $res (allowed at most $max)"
it_log "quiet /24: $(cat "$T/quiet.json")"
sec_le "$n" "$max" "replies to the flooding /24"
sec_ge "$n" 300 "replies to the flooding /24 (limit far too strict)"
sec_ge "$(sec_json replies <"$T/quiet.json")" 148 "replies to the quiet /24"
sec_ge "$(($(sec_stat drop.rate_limited) - limited0))" 2000 "drop.rate_limited"
sec_no_refused
it_pass
