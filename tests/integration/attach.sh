#!/usr/bin/env bash
# attach.sh - two separate programs share udpmuxd's port through attach
# routes (issue 6): a C program using libudpmux's attach client and an asyncio
# Python program using the udpmux package (python/examples/attach_asyncio.py:
# udpmux.create_datagram_endpoint). Each is server and client at
# once with real peers on loopback; no datagram reaches the wrong program;
# an unauthorised user is refused; a second claim of an exclusive route is
# refused; a killed program's flows are gone at once and no descriptor leaks.
. "$(dirname "$0")/lib.sh"
it_init "$@"
ATTACH_PEER=${ATTACH_PEER:?set by meson}
PY=/usr/bin/python3
N=200

it_attach_conf "$T/udpmux.conf" alpha=ALPHA beta=BETA
it_daemon "$T/udpmux.conf"
fds_before=$(ls /proc/"$UMXD_PID"/fd | wc -l)

# uid 65534 cannot read the tree when it sits in a 0700 home: it runs a copy
# (the example finds the udpmux package at ../udpmux)
install -d -m 0755 "$T/py" "$T/py/examples" "$T/py/udpmux"
install -m 0644 "$UMX_SRC"/python/udpmux/*.py "$T/py/udpmux/"
install -m 0644 "$UMX_SRC/python/examples/attach_asyncio.py" "$T/py/examples/"

# 1. unauthorised user: uid 65534 may not claim a route allowing only root
set +e
setpriv --reuid=65534 --regid=65534 --clear-groups \
    $PY "$T/py/examples/attach_asyncio.py" "$T/attach.sock" alpha ALPHA \
    127.0.0.1:5001 1 2 >"$T/nobody.log" 2>&1
rc=$?
set -e
# the socket is 0666 but the route says uid:0: refused with EACCES (77)
it_eq "$rc" 77 "attach as uid 65534"
it_log_has nobody "not allowed" "refusal message"

# 2. both programs, server and client at once, at the same time; the peers
# bind first (the programs' first requests must find them) and start their
# own requests once the programs have attached
it_bg peers 40 $PY "$IT_DIR/attach-peers.py" 127.0.0.1:$IT_PORT $N 30 1.5 ALPHA=5001 BETA=5002
it_wait_log "$T/peers.log" bound 5 || it_fail "peers did not start"
it_bg prog_c 40 "$ATTACH_PEER" "$T/attach.sock" alpha ALPHA 127.0.0.1:5001 $N 30
it_bg prog_py 40 $PY "$UMX_SRC/python/examples/attach_asyncio.py" "$T/attach.sock" beta BETA \
    127.0.0.1:5002 $N 30
it_wait_log "$T/prog_c.log" attached 5 || it_fail "C program did not attach"
it_wait_log "$T/prog_py.log" attached 5 || it_fail "Python program did not attach"

# 3. exclusive route: a second claim of alpha is refused while the first holds it
set +e
"$ATTACH_PEER" "$T/attach.sock" alpha ALPHA 127.0.0.1:5009 1 1 >"$T/second.log" 2>&1
rc=$?
set -e
[ "$rc" != 0 ] || it_fail "a second program claimed an exclusive route"
it_log_has second "already held|busy" "second claim refusal"

wait "$(it_pid peers)" || it_fail "peers did not get every answer"
for p in prog_c prog_py; do
    wait "$(it_pid $p)" || { cat "$T/$p.log" >&2; it_fail "$p failed"; }
    it_log_has "$p" "served=$N answered=$N wrong=0" "$p counts"
done
cat "$T/peers.log" >&2

# 4. kill -9 a program: its flows go at once, a new program can claim the
# route immediately, and the daemon holds no extra descriptor afterwards
it_bg victim 30 "$ATTACH_PEER" "$T/attach.sock" alpha ALPHA 127.0.0.1:5003 100000 25
it_wait_log "$T/victim.log" attached 5 || it_fail "victim did not attach"
timeout 5 $PY "$IT_DIR/attach-peers.py" 127.0.0.1:$IT_PORT 20 2 0 ALPHA=5003 >/dev/null 2>&1 || true
# it_bg's pid is timeout(1)'s: SIGKILL the program itself
vpid=$(pgrep -P "$(it_pid victim)")
[ -n "$vpid" ] || it_fail "victim not running"
kill -9 "$vpid"
sleep 0.5
it_bg peers2 20 $PY "$IT_DIR/attach-peers.py" 127.0.0.1:$IT_PORT 20 15 1 ALPHA=5004
it_wait_log "$T/peers2.log" bound 5 || it_fail "peers2 did not start"
it_bg heir 20 "$ATTACH_PEER" "$T/attach.sock" alpha ALPHA 127.0.0.1:5004 20 15
it_wait_log "$T/heir.log" attached 5 || it_fail "the route was not free after the kill"
wait "$(it_pid peers2)" || it_fail "heir did not serve"
wait "$(it_pid heir)" || it_fail "heir failed"
# descriptors of departed programs close once every worker has gone round
# its loop (at most about a second when idle)
for i in $(seq 1 50); do
    fds_after=$(ls /proc/"$UMXD_PID"/fd | wc -l)
    [ "$fds_after" -le "$fds_before" ] && break
    sleep 0.1
done
[ "$fds_after" -le "$fds_before" ] || it_fail "descriptor leak: $fds_before before, $fds_after after"
# and no flow pinned to a departed program is left in any worker
if [ -n "${UDPMUXCTL:-}" ] && [ -x "$UDPMUXCTL" ]; then
    active=$("$UDPMUXCTL" -s "$T/control.sock" stats | sed -n 's/^flows.active=//p')
    it_eq "$active" 0 "flows left after every program detached"
fi
it_pass
