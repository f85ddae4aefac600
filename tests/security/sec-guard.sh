#!/bin/bash
# sec-guard.sh - C3: udpmuxd reports a socket on its port that it did not
# create (daemon/guard.c, sock_diag every 2 s) within 5 s: another user on a
# more specific address of the same port (127.0.0.2 next to our 127.0.0.1)
# and on the other family ([::1]). Nothing is reported before, and the
# all-clear comes once the squatters are gone.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
it_init "$@"

it_conf "$T/u.conf" <<EOC
[listen]
address = 127.0.0.1:4000

[route echo]
match = any
action = echo
EOC
it_daemon "$T/u.conf"
sleep 2.5
it_log_lacks udpmuxd "foreign socket" "before any squatter"

squat()
{
    it_bg "$1" 30 setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 -c "
import socket, sys, time
fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 4000))
print('bound', flush=True)
time.sleep(25)" "$2"
}
t0=$(date +%s.%N)
squat sq4 127.0.0.2
squat sq6 ::1
it_wait_log "$T/sq4.log" bound 5
it_wait_log "$T/sq6.log" bound 5
it_wait_log "$T/udpmuxd.log" "foreign socket on our port: 127\.0\.0\.2:4000, uid 65534" 5
it_wait_log "$T/udpmuxd.log" "foreign socket on our port: \[::1\]:4000, uid 65534" 5
t1=$(date +%s.%N)
it_log "both squatters reported after $(/usr/bin/python3 -c "print(round($t1 - $t0, 2))") s"
# logged once per socket, not every scan
sleep 4.5
it_eq "$(grep -c 'foreign socket on our port: 127.0.0.2:4000' "$T/udpmuxd.log")" 1 "log lines for one squatter"
it_stop sq4
it_stop sq6
it_wait_log "$T/udpmuxd.log" "no foreign socket on our ports any more" 5
sec_no_refused
it_pass
