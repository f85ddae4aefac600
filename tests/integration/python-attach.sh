#!/usr/bin/env bash
# python-attach.sh - the Python package udpmux (python/) with real programs:
# an asyncio program (udpmux.create_datagram_endpoint, an ordinary
# asyncio.DatagramProtocol) and a Twisted program (an unchanged
# DatagramProtocol on udpmux.twisted.listenAttached) share udpmuxd's one port,
# each server and client at once, with real peers on loopback; no datagram
# reaches the wrong program. Then the package is installed with pip into a
# fresh venv and the same two programs run from outside the source tree
# against the installed copy. Also: the Twisted adapter's non-blocking
# attach() and its refusal (EBUSY) on an exclusive route already held.
. "$(dirname "$0")/lib.sh"
it_init "$@"
PY=/usr/bin/python3
N=150
$PY -c 'import twisted' 2>/dev/null || { echo "SKIP: python3-twisted missing"; exit 77; }

it_attach_conf "$T/udpmux.conf" aio=AIO twi=TWI
it_daemon "$T/udpmux.conf"

# run_pair PYTHON DIR: both programs from DIR at once, with the peers. The
# programs attach first (importing Twisted takes seconds on a loaded
# machine, and requests to an unclaimed route are dropped), then the peers
# bind, then $T/go-N lets the programs' own requests start.
run_pair()
{
    local py=$1 dir=$2 round=$3
    it_bg "aio$round" 60 "$py" "$dir/attach_asyncio.py" "$T/attach.sock" aio AIO 127.0.0.1:5001 $N 40 \
        "$T/go-$round"
    it_bg "twi$round" 60 "$py" "$dir/attach_twisted.py" "$T/attach.sock" twi TWI 127.0.0.1:5002 $N 40 \
        "$T/go-$round"
    it_wait_log "$T/aio$round.log" attached 20 || it_fail "asyncio program did not attach"
    it_wait_log "$T/twi$round.log" attached 20 || it_fail "Twisted program did not attach"
    it_bg "peers$round" 40 $PY "$IT_DIR/attach-peers.py" 127.0.0.1:$IT_PORT $N 30 0.2 \
        AIO=5001 TWI=5002
    it_wait_log "$T/peers$round.log" bound 10 || it_fail "peers did not start"
    touch "$T/go-$round"
    wait "$(it_pid "peers$round")" || it_fail "peers did not get every answer (round $round)"
    for p in "aio$round" "twi$round"; do
        wait "$(it_pid "$p")" || { cat "$T/$p.log" >&2; it_fail "$p failed"; }
        it_log_has "$p" "served=$N answered=$N wrong=0" "$p counts"
    done
}

# 1. from the source tree
run_pair $PY "$UMX_SRC/python/examples" 1

# 2. the Twisted adapter without blocking the reactor: attach() fires with
# the port; a second claim of the held route fails with EBUSY (errback)
it_bg holder 20 $PY "$UMX_SRC/python/examples/attach_asyncio.py" "$T/attach.sock" twi TWI \
    127.0.0.1:5009 100000 15
it_wait_log "$T/holder.log" attached 5 || it_fail "holder did not attach"
out=$(PYTHONPATH="$UMX_SRC/python" timeout 20 $PY - "$T/attach.sock" <<'PYEOF' 2>&1
import errno, sys
from twisted.internet import reactor
from twisted.internet.protocol import DatagramProtocol
import udpmux, udpmux.twisted as ut
res = []
def ok(port): res.append("aio-ok"); port.stopListening()
def busy(f): res.append("twi-" + errno.errorcode.get(getattr(f.value, "errno", 0), "?"))
ut.attach("aio", DatagramProtocol(), path=sys.argv[1]).addCallbacks(ok, lambda f: res.append(str(f.value)))
ut.attach("twi", DatagramProtocol(), path=sys.argv[1]).addCallbacks(lambda p: res.append("twi-ok"), busy)
reactor.callLater(3, reactor.stop)
reactor.run()
print(" ".join(sorted(res)))
PYEOF
)
it_eq "$out" "aio-ok twi-EBUSY" "attach() on a free and on a held route"
it_stop holder

# 3. pip install into a fresh venv, run the examples from outside the tree
$PY -m venv --system-site-packages "$T/venv" || it_fail "venv"
# from a copy: setuptools writes build/ and *.egg-info next to the sources
cp -r "$UMX_SRC/python" "$T/pysrc"
"$T/venv/bin/pip" install --no-index --no-build-isolation --no-deps -q "$T/pysrc" \
    >"$T/pip.log" 2>&1 || { cat "$T/pip.log" >&2; it_fail "pip install"; }
mkdir "$T/outside"
cp "$UMX_SRC/python/examples/attach_asyncio.py" "$UMX_SRC/python/examples/attach_twisted.py" \
    "$T/outside/"
where=$(cd "$T/outside" && "$T/venv/bin/python" -c 'import udpmux; print(udpmux.__file__)')
it_contains "$where" "$T/venv/" "udpmux imported from the venv"
run_pair "$T/venv/bin/python" "$T/outside" 2
it_pass
