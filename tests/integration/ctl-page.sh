#!/usr/bin/env bash
# ctl-page.sh - the status page (GET /) in headless Chromium at phone size
# (412x900): a screenshot that is a real PNG of that size with more than a
# blank page's worth of bytes, and the DOM after the scripts ran: listeners,
# routes, backends with their health (one drained), the live rate of the
# route that carries traffic, at least two in-place refreshes
# (the page counts its redraws from /status.json), and no external assets.
. "$(dirname "$0")/lib.sh"
it_init "$@"
. "$(dirname "$0")/ctl-lib.sh"

command -v chromium >/dev/null || it_fail "chromium missing (scripts/deps.sh installs it)"
M=127.0.0.1:9531
it_echo b1 127.0.0.1:5001 b1
it_echo b2 127.0.0.1:5002 b2
it_wait_udp 5001
it_wait_udp 5002
IT_CONF_EXTRA="metrics = $M" it_conf "$T/u.conf" <<EOF
[listen]
address = 127.0.0.1:$IT_PORT

[route game]
match = regex "^FWD"
forward = 127.0.0.1:5001, 127.0.0.1:5002

[route ping]
match = regex "^PING"
action = echo
EOF
it_daemon "$T/u.conf"
ctl drain 127.0.0.1:5002 >/dev/null
send 127.0.0.1:6001 "FWD one" 3 >/dev/null
# traffic for the whole test: the page must show a non-zero rate
it_bg traffic 60 $IT_PY "$T/traffic.py" --bind 127.0.0.1:6002 --prefix PING --rate 40 --seconds 50
sleep 1

# the page itself: no external scripts, styles, fonts or images
timeout 10 curl -sS "http://$M/" >"$T/page.html"
if grep -Eio '(src|href)="[^"#]+' "$T/page.html" | grep -v '^[a-z]*="/' | grep -q .; then
    it_fail "external asset: $(grep -Eio '(src|href)="[^"]+' "$T/page.html" | head -n 3)"
fi
grep -q 'name="viewport"' "$T/page.html" || it_fail "no viewport meta (phone layout)"

chrome()
{
    local ud
    ud=$(mktemp -d "$T/chrome.XXXXXX")
    timeout -k 5 60 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$ud" --window-size=412,900 "$@" 2>>"$T/chromium.log"
}

chrome --screenshot="$T/page.png" "http://$M/" >/dev/null
[ -f "$T/page.png" ] || it_fail "no screenshot"
size=$(stat -c %s "$T/page.png")
[ "$size" -gt 15000 ] || it_fail "screenshot only $size bytes (blank page?)"
$IT_PY - "$T/page.png" <<'EOF' || it_fail "screenshot is not a 412x900 PNG"
import struct, sys
b = open(sys.argv[1], "rb").read(33)
assert b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR", b[:16]
w, h = struct.unpack(">II", b[16:24])
assert (w, h) == (412, 900), (w, h)
EOF

# the DOM once the page has run its refresh a few times (virtual time lets
# the one-second timer fire without waiting for it)
chrome --virtual-time-budget=5000 --dump-dom "http://$M/" >"$T/dom.html"
dom=$(cat "$T/dom.html")
it_contains "$dom" "127.0.0.1:$IT_PORT" "listener on the page"
it_contains "$dom" 'data-route="game"' "route game"
it_contains "$dom" 'data-route="ping"' "route ping"
it_contains "$dom" '<span class="b up">127.0.0.1:5001 up</span>' "healthy backend"
it_contains "$dom" '<span class="bs">flows 1, to 3 dg/39 B, from 3 dg/111 B</span>' \
    "the backend's flows and traffic"
it_contains "$dom" '<span class="b draining">127.0.0.1:5002 draining</span>' "drained backend"
it_contains "$dom" "version $("$UDPMUXD" -V | awk '{print $2}')" "version"
# the ping route's rate, "in N dg/s": traffic runs at 40/s
rate=$(grep -o 'data-route="ping"><h3>.*' "$T/dom.html" | grep -o 'in [0-9.k]* dg/s' | head -n 1 |
    awk '{print $2}')
[ -n "$rate" ] || it_fail "no rate for ping on the page"
$IT_PY -c 'import sys; v=float(sys.argv[1]); sys.exit(0 if 20 <= v <= 60 else 1)' "$rate" ||
    it_fail "ping rate on the page is $rate, want about 40"
# redrawn in place from /status.json (the page counts its refreshes)
refreshes=$(grep -o 'data-refreshes="[0-9]*"' "$T/dom.html" | grep -o '[0-9]*' || true)
[ "${refreshes:-0}" -ge 2 ] || it_fail "the page did not refresh from /status.json (${refreshes:-0})"
it_log "page: screenshot $size bytes, ping shown at $rate datagrams/s, $refreshes refreshes"
it_pass
