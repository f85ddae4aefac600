#!/bin/bash
# Regenerates tests/data/pcap/radius.pcap: FreeRADIUS 3.2 (Debian default
# configuration, client localhost with secret testing123, plus a test user
# added through a private copy of the config) answering radclient: an
# Access-Request accepted, one rejected, an Accounting-Request and a
# Status-Server.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

chmod 755 "$UMX_TMP" # radiusd drops to the freerad user
cd "$UMX_TMP"
cp -a /etc/freeradius/3.0 raddb
printf 'umx Cleartext-Password := "secret"\n\tReply-Message := "hello from udpmux"\n' \
    >>raddb/mods-config/files/authorize
umx_capture_start radius.pcap "udp port 1812 or udp port 1813 or udp port 18121"
timeout 30 freeradius -f -d "$UMX_TMP/raddb" -l stdout -n radiusd >radiusd.log 2>&1 &
for _ in $(seq 1 100); do
    grep -q "Ready to process requests" radiusd.log && break
    sleep 0.2
done
R="timeout 5 radclient -r 1 -t 2 -q"
printf 'User-Name = "umx", User-Password = "secret", NAS-IP-Address = 127.0.0.1, NAS-Port = 1\n' |
    $R 127.0.0.1:1812 auth testing123 || echo "auth (accept) failed" >&2
printf 'User-Name = "umx", User-Password = "wrong", NAS-Port = 2\n' |
    $R 127.0.0.1:1812 auth testing123 || true
printf 'User-Name = "umx", Acct-Status-Type = Start, Acct-Session-Id = "umx-1", NAS-IP-Address = 127.0.0.1\n' |
    $R 127.0.0.1:1813 acct testing123 || echo "acct failed" >&2
printf 'Message-Authenticator = 0x00, FreeRADIUS-Statistics-Type = 1\n' |
    $R 127.0.0.1:1812 status testing123 || echo "status failed" >&2
grep -E "^.{26}Error" radiusd.log >&2 || true
umx_capture_stop
