#!/bin/bash
# sec-privs.sh - C12: least privilege after start-up.
#
# 1. `user = umxsec` (a dedicated uid, added to a private copy of
#    /etc/passwd in this test's mount namespace): every thread has that
#    uid/gid, no capability at all, NoNewPrivs 1, Seccomp 2 (filter mode),
#    and the daemon still does everything it does (forwarding, built-in
#    echo and STUN, reloads, the control socket, the foreign-socket watch)
#    with UDPMUXD_SECCOMP=kill: a call missing from the allow-list would
#    kill it, and no refusal may appear in the log.
# 2. Without `user =` (stays uid 0): still no capability in any thread.
# 3. `seccomp = no`: no filter (Seccomp 0), capabilities still dropped.
# (The filter refusing forbidden calls is tests/security/seccomp-check.c.)
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
it_init "$@"

cp /etc/passwd "$T/passwd"
cp /etc/group "$T/group"
echo "umxsec:x:64999:64999:udpmux test:/nonexistent:/usr/sbin/nologin" >>"$T/passwd"
echo "umxsec:x:64999:" >>"$T/group"
mount --bind "$T/passwd" /etc/passwd
mount --bind "$T/group" /etc/group
id umxsec >/dev/null || it_fail "private user not visible"

# check_tasks PID UID SECCOMP: every thread of PID
check_tasks()
{
    local pid=$1 uid=$2 sc=$3 t n=0 f
    for t in /proc/"$pid"/task/*; do
        f="$t/status"
        n=$((n + 1))
        read -r -a u < <(awk '$1 == "Uid:" { print $2, $3, $4, $5 }' "$f")
        read -r -a g < <(awk '$1 == "Gid:" { print $2, $3, $4, $5 }' "$f")
        [ "${u[*]}" = "$uid $uid $uid $uid" ] || it_fail "$t: Uid ${u[*]}, want $uid"
        [ "${g[*]}" = "$uid $uid $uid $uid" ] || it_fail "$t: Gid ${g[*]}, want $uid"
        for c in CapInh CapPrm CapEff CapAmb; do
            it_eq "$(awk -v k="$c:" '$1 == k { print $2 }' "$f")" 0000000000000000 "$t $c"
        done
        it_eq "$(awk '$1 == "NoNewPrivs:" { print $2 }' "$f")" 1 "$t NoNewPrivs"
        it_eq "$(awk '$1 == "Seccomp:" { print $2 }' "$f")" "$sc" "$t Seccomp"
    done
    [ "$n" -ge 3 ] || it_fail "only $n threads (main + 2 workers expected)"
    it_log "pid $pid: $n threads, uid $uid, no capabilities, NoNewPrivs 1, Seccomp $sc"
}

stun_hex()
{
    # Binding request with a SOFTWARE attribute: 36 bytes, room for the
    # 32-byte answer (the responder never answers with more than it got)
    /usr/bin/python3 -c '
import os, struct
sw = b"udpmux-test\0"
print((struct.pack(">HHI", 1, 4 + len(sw), 0x2112A442) + os.urandom(12) +
       struct.pack(">HH", 0x8022, len(sw)) + sw).hex())'
}

exercise()
{
    local name=$1 out i
    out=$(it_ask 127.0.0.1:4000 "FWD one")
    it_contains "$out" "be1|" "forwarded answer"
    out=$(it_ask 127.0.0.1:4000 "ping one")
    it_eq "$out" "ping one" "built-in echo"
    out=$(it_ask 127.0.0.1:4000 x --hex "$(stun_hex)" --print-hex)
    it_contains "$out" "0101" "STUN success response"
    for i in 1 2; do
        kill -HUP "$(sec_dpid "$name")"
        it_wait_log "$T/$name.log" "configuration reloaded" 5
    done
    timeout 5 "$UDPMUXCTL" -s "$T/control.sock" status >"$T/ctl-status.log" ||
        it_fail "udpmuxctl status"
    timeout 5 "$UDPMUXCTL" -s "$T/control.sock" stats >"$T/ctl-stats.log" ||
        it_fail "udpmuxctl stats"
    timeout 5 "$UDPMUXCTL" -s "$T/control.sock" flows >"$T/ctl-flows.log" ||
        it_fail "udpmuxctl flows"
    grep -q "FWD\|fwd" "$T/ctl-flows.log" || grep -q "127.0.0.1" "$T/ctl-flows.log" ||
        it_fail "flows list empty"
    # the foreign-socket watch runs every 2 s under the filter too
    sleep 2.5
    out=$(it_ask 127.0.0.1:4000 "FWD two")
    it_contains "$out" "be1|" "forwarded answer after reloads"
    kill -0 "$(sec_dpid "$name")" || it_fail "udpmuxd died"
    sec_no_refused "$name"
}

it_echo be1 127.0.0.1:5001
it_wait_udp 5001

routes()
{
    cat <<EOC
[listen]
address = 127.0.0.1:4000

[route fwd]
match = regex "^FWD"
forward = 127.0.0.1:5001

[route echo]
match = regex "^ping"
action = echo

[route stun]
match = stun
action = stun
EOC
}

export UDPMUXD_SECCOMP=kill
IT_CONF_EXTRA="user = umxsec" it_conf "$T/user.conf" < <(routes)
it_daemon "$T/user.conf" user
check_tasks "$(sec_dpid user)" 64999 2
exercise user
check_tasks "$(sec_dpid user)" 64999 2
sec_sanitizer_clean user
it_log_has user "stopped"

IT_CONF_EXTRA="" it_conf "$T/root.conf" < <(routes)
it_daemon "$T/root.conf" root
check_tasks "$(sec_dpid root)" 0 2
exercise root
sec_sanitizer_clean root

IT_CONF_EXTRA="seccomp = no" it_conf "$T/nosc.conf" < <(routes)
it_daemon "$T/nosc.conf" nosc
check_tasks "$(sec_dpid nosc)" 0 0
it_log_has nosc "seccomp = no"
it_stop nosc
it_pass
