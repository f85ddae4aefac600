#!/bin/bash
# sec-sockets.sh - udpmuxd's local sockets hold against local users (issue 12).
#  1. attach: uids the daemon does not trust take what they can of the attach
#     socket (one claims 16 connections of a route open to it, three more
#     keep reconnecting silent ones); root still attaches every time, a
#     silent connection is closed within its 2 s hello deadline, a uid gets
#     at most 16 connections and the library reports the refusal as EUSERS.
#  2. control: 16 clients that send one byte a second and never a whole
#     request lose their slots at the 10 s request deadline; udpmuxctl works.
#  3. metrics: 96 half-sent requests trickled from 6 addresses leave /metrics
#     answerable (per-address limit of libmicrohttpd).
#  4. the socket files: `attach =` and `control =` never delete a file that
#     is not their stale socket (a regular file, a FIFO, the other socket at
#     the same path); a stale socket of a killed daemon is replaced.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
it_init "$@"
ATTACH_PEER=${ATTACH_PEER:?set by meson}

# what the untrusted uids run must be readable by them wherever the tree is
install -m 0755 "$SEC_DIR/sec-hog.py" "$T/hog.py"
install -m 0755 "$ATTACH_PEER" "$T/attach-peer"
# as_uid UID: the setpriv prefix that runs a command as UID, no groups
as_uid()
{
    echo "setpriv --reuid=$1 --regid=$1 --clear-groups"
}

IT_CONF_EXTRA="metrics = 127.0.0.1:9100" it_conf "$T/u.conf" <<EOC
[listen]
address = 127.0.0.1:$IT_PORT

[route alpha]
match = regex "^ALPHA "
action = attach
allow = uid:0

[route open]
match = regex "^OPEN "
action = attach
allow = uid:65534
share = fanout

[route rest]
match = any
action = echo
EOC
it_daemon "$T/u.conf"

# 1. attach -------------------------------------------------------------------
it_bg claim 30 $(as_uid 65534) /usr/bin/python3 "$T/hog.py" attach-claim "$T/attach.sock" open 20 9
it_wait_log "$T/claim.log" "claimed=" 10 || it_fail "claimer did not start"
it_log "uid 65534: $(head -n 1 "$T/claim.log")"
it_log_has claim "claimed=16 refused=4 codes=EUSERS,EUSERS,EUSERS,EUSERS" "per-uid cap"
# the library says why: -EUSERS
set +e
$(as_uid 65534) timeout 10 "$T/attach-peer" "$T/attach.sock" open OPEN 127.0.0.1:5001 0 1 \
    >"$T/peer17.log" 2>&1
rc=$?
set -e
it_eq "$rc" 1 "17th attach of uid 65534"
it_log_has peer17 "attach open: Too many users" "library error"
for u in 65533 65532 65531; do
    it_bg "silent$u" 30 $(as_uid "$u") /usr/bin/python3 "$T/hog.py" attach-silent "$T/attach.sock" 7 40
done
sleep 1
# root attaches while the others hold or churn every slot they may
for i in 1 2 3; do
    rc=0
    timeout 10 "$ATTACH_PEER" "$T/attach.sock" alpha ALPHA 127.0.0.1:5001 0 1 \
        >"$T/root$i.log" 2>&1 || rc=$?
    it_eq "$rc" 0 "root attach $i under pressure ($(head -n 1 "$T/root$i.log"))"
    it_log_has "root$i" attached "root attach $i"
done
for u in 65533 65532 65531; do
    wait "$(it_pid "silent$u")" || it_fail "silent hog $u failed"
    line=$(tail -n 1 "$T/silent$u.log")
    it_log "uid $u: $line"
    # no silent connection lived much past the 2 s deadline
    maxlife=$(sed -n 's/.* maxlife=\([0-9.]*\).*/\1/p' <<<"$line")
    oldest=$(sed -n 's/.* oldest=\([0-9.]*\).*/\1/p' <<<"$line")
    timeouts=$(sed -n 's/.* timeouts=\([0-9]*\).*/\1/p' <<<"$line")
    /usr/bin/python3 -c "import sys; sys.exit(0 if $maxlife <= 3.5 and $oldest <= 3.5 else 1)" ||
        it_fail "uid $u held a silent attach connection for ${maxlife}s (oldest open ${oldest}s)"
    sec_ge "$timeouts" 16 "silent connections of uid $u closed at the deadline"
done
wait "$(it_pid claim)" || it_fail "claimer failed"
it_log_has claim "claims_alive=16" "claimed connections survive the deadline"
it_log_has udpmuxd "sent no hello within 2 s" "deadline log"

# 2. control ------------------------------------------------------------------
it_bg trickle 40 /usr/bin/python3 "$T/hog.py" control-trickle "$T/control.sock" 16 14
it_wait_log "$T/trickle.log" ready 5 || it_fail "trickler did not start"
sleep 1
set +e
timeout 5 "$UDPMUXCTL" -s "$T/control.sock" status >"$T/ctl-busy.log" 2>&1
rc=$?
set -e
it_log "while 16 clients trickle: udpmuxctl status exit $rc"
ok=0
for i in $(seq 1 30); do
    if timeout 5 "$UDPMUXCTL" -s "$T/control.sock" status >"$T/ctl-after.log" 2>&1; then
        ok=1
        break
    fi
    sleep 0.5
done
t_ok=$i
[ $ok = 1 ] || it_fail "control slots still held by trickling clients after 15 s"
it_log "udpmuxctl status answered after $((t_ok / 2)) s more"
wait "$(it_pid trickle)" || it_fail "trickler failed"
it_log "trickler: $(tail -n 1 "$T/trickle.log")"
it_log_has trickle "closed=16 open=0" "trickling control clients closed"

# 3. metrics ------------------------------------------------------------------
it_bg slow 40 /usr/bin/python3 "$T/hog.py" metrics-slow 9100 \
    127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5,127.0.0.6,127.0.0.7 16 6
it_wait_log "$T/slow.log" ready 10 || it_fail "slow HTTP clients did not start"
sleep 1.5
for i in 1 2 3; do
    t0=$(date +%s%N)
    curl -s -m 3 -o "$T/metrics.txt" http://127.0.0.1:9100/metrics ||
        it_fail "/metrics did not answer with 96 half-sent requests open (try $i)"
    it_log "/metrics answered in $((($(date +%s%N) - t0) / 1000000)) ms under 96 half-sent requests"
    grep -q '^udpmux_build_info' "$T/metrics.txt" || it_fail "/metrics document incomplete"
    sleep 1
done
wait "$(it_pid slow)" || it_fail "slow HTTP clients failed"
it_log "slow HTTP clients: $(tail -n 1 "$T/slow.log")"
it_stop udpmuxd

# 4. socket files -------------------------------------------------------------
# a regular file at the attach path is left alone (and the daemon says why)
echo precious >"$T/attach.sock"
it_daemon "$T/u.conf" d2
it_wait_log "$T/d2.log" "attach: .*attach.sock: a file that is not a socket" 5 ||
    it_fail "no error about the file at the attach path"
it_eq "$(cat "$T/attach.sock" 2>/dev/null)" precious "regular file at the attach path"
it_stop d2
rm -f "$T/attach.sock"
# a FIFO at the control path likewise
mkfifo "$T/control.sock"
it_daemon "$T/u.conf" d3
it_wait_log "$T/d3.log" "control: .*control.sock: a file that is not a socket" 5 ||
    it_fail "no error about the FIFO at the control path"
[ -p "$T/control.sock" ] || it_fail "the FIFO at the control path was removed"
it_stop d3
rm -f "$T/control.sock"
# attach = control: refused by the config check (file:line), so the attach
# socket's set-up can never delete the control socket
sed "s|^attach = .*|attach = $T/control.sock|" "$T/u.conf" >"$T/same.conf"
set +e
"$UDPMUXD" -t -c "$T/same.conf" >"$T/same.log" 2>&1
rc=$?
set -e
[ "$rc" != 0 ] || it_fail "attach = control accepted"
grep -q "same.conf:[0-9]*:.*attach" "$T/same.log" || it_fail "no file:line refusal: $(cat "$T/same.log")"
# a killed daemon's stale sockets are replaced
it_daemon "$T/u.conf" d5
kill -9 "$UMXD_PID"
sleep 0.3
[ -S "$T/attach.sock" ] && [ -S "$T/control.sock" ] || it_fail "no stale sockets after kill -9"
it_daemon "$T/u.conf" d6
timeout 10 "$ATTACH_PEER" "$T/attach.sock" alpha ALPHA 127.0.0.1:5001 0 1 >"$T/root-d6.log" 2>&1 ||
    it_fail "attach after a stale socket was replaced"
timeout 5 "$UDPMUXCTL" -s "$T/control.sock" status >/dev/null || it_fail "control after restart"
sec_no_refused udpmuxd
it_pass
