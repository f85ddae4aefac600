#!/usr/bin/env bash
# ctl-emfile.sh - out of descriptors: connections to the control socket that
# cannot be accepted (EMFILE) must not leave the listener readable and spin
# the main loop. The daemon runs with a descriptor limit just above what it
# needs at start; six clients connect and stay; over 2 s the daemon must use
# (almost) no CPU, log the refusal, and answer udpmuxctl once they leave.
. "$(dirname "$0")/lib.sh"
it_init "$@"
UDPMUXCTL=${UDPMUXCTL:?set by meson}

IT_WORKERS=1 it_conf "$T/u.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route ping]
match = regex "^PING"
action = echo
CONF
# measure what the daemon holds at start, then restart it with two spare
it_daemon "$T/u.conf" probe
need=$(ls /proc/"$UMXD_PID"/fd | wc -l)
it_stop probe
REAL=$UDPMUXD
UDPMUXD=$T/udpmuxd-lowfd
printf '#!/bin/sh\nulimit -n %d\nexec "%s" "$@"\n' $((need + 2)) "$REAL" >"$UDPMUXD"
chmod +x "$UDPMUXD"
it_daemon "$T/u.conf"
it_log "daemon holds $need descriptors at start; limit $((need + 2))"

timeout 30 $IT_PY - "$T/control.sock" "$UMXD_PID" >"$T/emfile.log" 2>&1 <<'PY' || it_fail "$(cat "$T/emfile.log")"
import glob, socket, sys, time
path, pid = sys.argv[1], sys.argv[2]
def ticks():
    t = 0
    for f in glob.glob("/proc/%s/task/*/stat" % pid):
        x = open(f).read().rsplit(")", 1)[1].split()
        t += int(x[11]) + int(x[12])
    return t
socks = []
for i in range(6):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    socks.append(s)
time.sleep(0.3)
t0 = ticks()
time.sleep(2)
used = ticks() - t0
print("CPU ticks in 2 s with 6 clients and no descriptors left: %d" % used)
# a spinning main loop burns ~200 ticks in 2 s
if used > 40:
    sys.exit("main loop spins: %d ticks in 2 s" % used)
for s in socks:
    s.close()
PY
it_log "$(cat "$T/emfile.log")"
it_log_has udpmuxd "out of file descriptors: refused a local connection"
"$UDPMUXCTL" -s "$T/control.sock" status >/dev/null || it_fail "no status after the clients left"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
