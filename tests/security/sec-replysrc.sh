#!/bin/bash
# sec-replysrc.sh - C15: replies leave from the exact local address and port
# the request was sent to. Wildcard listeners (0.0.0.0:4000, [::]:4000) on a
# namespace with several local addresses (127/8 is all local; 2001:db8::7 is
# added to lo); for each destination, a built-in reply and a forwarded reply
# must come from that destination.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/sec-lib.sh"
it_init "$@"

ip addr add 2001:db8::7/128 dev lo nodad
it_bg be 60 $SEC_PY echo --listen 127.0.0.1:5001 --seconds 50
it_wait_udp 5001
IT_CONF_EXTRA="response-rate = 0" it_conf "$T/rs.conf" <<EOC
[listen]
address = 0.0.0.0:4000
address = [::]:4000

[route echo]
match = regex "^ping"
action = echo

[route fwd]
match = regex "^FWD"
forward = 127.0.0.1:5001
EOC
it_daemon "$T/rs.conf"

/usr/bin/python3 - >"$T/replysrc.log" 2>&1 <<'EOP' || it_fail "reply source check: $(tail -n 3 "$T/replysrc.log")"
import ipaddress, select, socket, sys
bad = 0
n = 0
for dst in ["127.0.0.1", "127.0.0.2", "127.9.9.9", "::1", "2001:db8::7"]:
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    for payload in [b"ping replysrc", b"FWD replysrc"]:
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.bind(("::1" if fam == socket.AF_INET6 else "127.0.0.1", 0))
        s.sendto(payload, (dst, 4000))
        r, _, _ = select.select([s], [], [], 2)
        if not r:
            print("no reply for", dst, payload)
            bad += 1
            continue
        data, src = s.recvfrom(2000)
        ok = ipaddress.ip_address(src[0]) == ipaddress.ip_address(dst) and src[1] == 4000 \
            and data == payload
        n += 1
        print("%s %-16s %-14s reply from %s:%d" % ("ok  " if ok else "BAD ", dst, payload.decode(), src[0], src[1]))
        bad += 0 if ok else 1
print("checked", n)
sys.exit(1 if bad or n != 10 else 0)
EOP
cat "$T/replysrc.log" >&2
sec_no_refused
it_pass
