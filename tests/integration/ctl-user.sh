#!/usr/bin/env bash
# ctl-user.sh - the control socket of a daemon that drops to `user = nobody`,
# `group = nogroup`: created before the drop in a directory made for it
# (0755), owned nobody:nogroup with mode 0660, still accepted on after the
# drop; root, the daemon's uid and a member of the socket's group get in, a
# stranger does not (neither through the file mode nor, with the file
# opened to all, through the credential check); the metrics listener bound
# before the drop serves after it; the stale socket a stopped daemon leaves
# behind (it can no longer unlink it) is cleared by the next start.
. "$(dirname "$0")/lib.sh"
it_init "$@"
. "$(dirname "$0")/ctl-lib.sh"

getent passwd nobody >/dev/null || it_fail "no user nobody"
getent group nogroup >/dev/null || it_fail "no group nogroup"
M=127.0.0.1:9531
mkdir -p "$T/run"
IT_CONF_EXTRA="user = nobody
group = nogroup
metrics = $M" it_conf "$T/u.conf" <<EOF
[listen]
address = 127.0.0.1:$IT_PORT

[route ping]
match = regex "^PING"
action = echo
EOF
# the control socket in a directory the daemon has to create
sed -i "s|^control = .*|control = $T/run/sub/control.sock|" "$T/u.conf"
it_daemon "$T/u.conf"
S="$T/run/sub/control.sock"
it_eq "$(stat -c '%a %U %G' "$T/run/sub")" "755 root root" "socket directory"
it_eq "$(stat -c '%a %U %G' "$S")" "660 nobody nogroup" "socket file"
dpid=$(jget <(ctl -s "$S" -j status) "d['status']['pid']")
it_eq "$(stat -c %U "/proc/$dpid")" nobody "daemon user"

send 127.0.0.1:6001 PING 3 >/dev/null
cp "$UDPMUXCTL" "$T/udpmuxctl"
as()
{
    local rc=0
    timeout 10 setpriv "$@" "$T/udpmuxctl" -s "$S" stats >"$T/as.out" 2>"$T/as.err" || rc=$?
    echo "$rc"
}
ctl_eq "$(ctl_rc -s "$S" stats)" 0 "root"
grep -qx "rx.datagrams=3" "$T/ctl-last.out" || it_fail "root's stats: $(head -n 3 "$T/ctl-last.out")"
ctl_eq "$(as --reuid=nobody --regid=nogroup --clear-groups)" 0 "the daemon's user"
ctl_eq "$(as --reuid=12345 --regid=12345 --groups=nogroup)" 0 "a member of the socket's group"
ctl_eq "$(as --reuid=12345 --regid=12345 --clear-groups)" 69 "a stranger (file mode)"
chmod 0666 "$S"
ctl_eq "$(as --reuid=12345 --regid=12345 --clear-groups)" 1 "a stranger (credentials)"
it_contains "$(cat "$T/as.err")" "permission denied"
chmod 0660 "$S"

sleep 0.6
code=$(timeout 10 curl -sS -o "$T/metrics.txt" -w '%{http_code}' "http://$M/metrics")
it_eq "$code" 200 "metrics after the privilege drop"
grep -qx 'udpmux_route_rx_datagrams_total{route="ping"} 3' "$T/metrics.txt" ||
    it_fail "metrics: $(grep route_rx_datagrams "$T/metrics.txt")"

# stop: the file stays (nobody cannot unlink in a root directory) and is stale
it_stop udpmuxd
[ -S "$S" ] || it_log "note: the socket was removed at exit"
it_daemon "$T/u.conf" udpmuxd2
ctl_eq "$(ctl_rc -s "$S" status)" 0 "second daemon on the same path"
# a second daemon on a live socket refuses to take it over (since one owner
# per port it already stops at the listen address, before the control
# socket: docs/security.md C16)
it_bg udpmuxd3 20 "$UDPMUXD" -c "$T/u.conf"
sleep 1
it_log_has udpmuxd3 "refusing to share|control: .*(in use|Address already in use)" "third daemon"
ctl_eq "$(ctl_rc -s "$S" status)" 0 "the running daemon keeps its socket"
it_pass
