#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-badreload.sh - a broken config on SIGHUP changes nothing: udpmuxd keeps
# running the old routes (established and new flows alike), logs the error
# with file:line, and a later good reload still works.
. "$(dirname "$0")/lib.sh"
it_init "$@"

it_echo a 127.0.0.1:5001
it_echo b 127.0.0.1:5002
it_wait_udp 5001
it_wait_udp 5002
good()
{
    it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route one]
match = prefix 6f6e65
forward = 127.0.0.1:$1
CONF
}
good 5001
it_daemon "$T/udpmux.conf"
it_contains "$(it_ask 127.0.0.1:$IT_PORT one-before --bind 127.0.0.1:6001)" "a|" "before"

# the broken version points the route at b but has an error further down
it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route one]
match = prefix 6f6e65
forward = 127.0.0.1:5002

[route two]
match = prefix 74776f
forward = 127.0.0.1:5001
idle-timeout = soon
CONF
bad_line=$(grep -n "idle-timeout = soon" "$T/udpmux.conf" | cut -d: -f1)
kill -HUP "$UMXD_PID"
it_wait_log "$T/udpmuxd.log" "reload refused" 5
it_log_has udpmuxd "reload refused.*$T/udpmux.conf:$bad_line: \[route two\] idle-timeout" \
    "error names file:line"
it_alive udpmuxd || it_fail "udpmuxd died on a bad reload"
# established flow and a new flow: both still go to a (old config)
it_contains "$(it_ask 127.0.0.1:$IT_PORT one-again --bind 127.0.0.1:6001)" "a|" "established flow"
it_contains "$(it_ask 127.0.0.1:$IT_PORT one-new --bind 127.0.0.1:6002)" "a|" "new flow, old config"
# route two does not exist
if it_ask "127.0.0.1:$IT_PORT" two --timeout 0.5 >/dev/null 2>&1; then
    it_fail "a route from the refused config answers"
fi
# listen addresses cannot change on reload: refused too, with a reason
good 5002
sed -i "s/^address = .*/address = 127.0.0.1:4001/" "$T/udpmux.conf"
kill -HUP "$UMXD_PID"
it_wait_log "$T/udpmuxd.log" "listening sockets are never re-bound" 5
it_contains "$(it_ask 127.0.0.1:$IT_PORT one-still --bind 127.0.0.1:6002)" "a|" "after refused listen change"
# a good reload afterwards applies
good 5002
kill -HUP "$UMXD_PID"
it_wait_log "$T/udpmuxd.log" "configuration reloaded" 5
it_contains "$(it_ask 127.0.0.1:$IT_PORT one-after --bind 127.0.0.1:6003)" "b|" "after a good reload"
# the config path replaced by a FIFO: the reload is refused at once (opening
# a FIFO used to wait for a writer on the main thread, so the daemon then
# ignored SIGTERM and the control socket), and the old routes keep working
mv "$T/udpmux.conf" "$T/udpmux.conf.good"
mkfifo "$T/udpmux.conf"
kill -HUP "$UMXD_PID"
it_wait_log "$T/udpmuxd.log" "reload refused.*udpmux.conf: a FIFO" 5
it_contains "$(it_ask 127.0.0.1:$IT_PORT one-fifo --bind 127.0.0.1:6004)" "b|" "after a FIFO reload"
kill -TERM "$UMXD_PID"
for i in $(seq 1 50); do
    kill -0 "$UMXD_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$UMXD_PID" 2>/dev/null; then
    it_fail "udpmuxd ignored SIGTERM after a reload of a FIFO"
fi
it_pass
