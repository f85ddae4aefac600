#!/usr/bin/env bash
# systemd.sh - udpmuxd under systemd's conventions without systemd running:
# socket activation with the real systemd-socket-activate --datagram
# (LISTEN_FDS), and the sd_notify protocol (READY, RELOADING, STOPPING,
# WATCHDOG) against a stand-in notification socket.
. "$(dirname "$0")/lib.sh"
it_init "$@"
PY=/usr/bin/python3

cat >"$T/act.conf" <<CONF
[listen]
# replaced by the activated socket
address = 127.0.0.1:4999

[udpmux]
control = $T/control.sock
attach = $T/attach.sock

[route echo]
match = regex "^ping "
action = echo

[route rest]
match = any
action = drop
CONF

# 1. socket activation: systemd-socket-activate binds 127.0.0.1:$IT_PORT and
# passes it as fd 3; udpmuxd must use it (not bind 4999)
it_activated activate "$T/act.conf" "ping activated"
it_wait_log "$T/activate.log" "using activated socket 127.0.0.1:$IT_PORT" 5 ||
    it_fail "udpmuxd did not adopt the activated socket"
ss -uanp | grep -q ":4999 " && it_fail "udpmuxd bound the config's address instead"
it_stop activate

# 1b. socket activation without any [listen] section: -t says where the
# sockets must come from, a plain start refuses clearly (78, no restart
# loop under RestartPreventExitStatus=78), an activated start serves, and a
# reload keeps the adopted socket
cat >"$T/nolisten.conf" <<CONF
[udpmux]
control = $T/control.sock
attach = $T/attach.sock

[route echo]
match = regex "^ping "
action = echo

[route rest]
match = any
action = drop
CONF
"$UDPMUXD" -t -c "$T/nolisten.conf" >"$T/nl-check.log" 2>&1 || it_fail "-t refused a config without [listen]"
grep -q "socket activation" "$T/nl-check.log" || it_fail "-t did not say the sockets come from systemd"
set +e
timeout 10 "$UDPMUXD" -c "$T/nolisten.conf" >"$T/nl-plain.log" 2>&1
rc=$?
set -e
it_eq "$rc" 78 "exit status of a start with no [listen] and no activated socket"
grep -q "no \[listen\] address" "$T/nl-plain.log" || it_fail "no clear refusal: $(cat "$T/nl-plain.log")"
it_activated activate2 "$T/nolisten.conf" "ping nolisten"
upid=$(pgrep -f "$UDPMUXD -c $T/nolisten.conf" | head -n 1)
kill -HUP "$upid"
it_wait_log "$T/activate2.log" "reload" 5 || it_fail "no reload logged"
grep -q "reload refused" "$T/activate2.log" && it_fail "reload refused under socket activation"
it_eq "$(it_udp_ask "127.0.0.1:$IT_PORT" "ping reloaded")" "ping reloaded" \
    "echo after a reload under socket activation"
it_stop activate2

# 2. sd_notify: READY=1 after start, RELOADING=1 then READY=1 on SIGHUP,
# WATCHDOG=1 at half of WATCHDOG_USEC, STOPPING=1 on SIGTERM
it_conf "$T/n.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route echo]
match = any
action = echo
CONF
it_bg notify 30 $PY "$IT_DIR/notify-listen.py" "$T/notify.sock" 25
it_wait_log "$T/notify.log" bound 5 || it_fail "notify listener did not start"
NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=400000 it_daemon "$T/n.conf" nd
it_wait_log "$T/notify.log" "^READY=1" 5 || it_fail "no READY=1"
kill -HUP "$UMXD_PID"
it_wait_log "$T/notify.log" "^RELOADING=1" 5 || it_fail "no RELOADING=1 on SIGHUP"
it_wait_log "$T/notify.log" "^WATCHDOG=1" 5 || it_fail "no WATCHDOG=1"
kill -TERM "$UMXD_PID"
it_wait_log "$T/notify.log" "^STOPPING=1" 5 || it_fail "no STOPPING=1"
# READY must come again after the reload
[ "$(grep -c '^READY=1' "$T/notify.log")" -ge 2 ] || it_fail "no READY=1 after the reload"
it_pass
