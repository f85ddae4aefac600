#!/usr/bin/env bash
# kernel-measure/run.sh - by hand, as root, with a build in build/:
#   unshare -n bash tests/integration/kernel-measure/run.sh kernel|user
# RTT of the first and second datagram of 300 flows, direct vs through
# udpmuxd; with kernel also a 20 000-flow burst and the queue thread CPU per
# verdict. Not a test (numbers for docs/internals/kernel-datapath.md).
set -eu
W=$(cd "$(dirname "$0")/../../.." && pwd); DP=${1:-kernel}
ip link set lo up
for n in cli be; do ip netns add kb-$n-$$; ip link add v-$n type veth peer name eth0 netns kb-$n-$$; done
ip addr add 10.1.0.1/24 dev v-cli; ip addr add 10.2.0.1/24 dev v-be; ip link set v-cli up; ip link set v-be up
for n in cli be; do ip -n kb-$n-$$ link set lo up; ip -n kb-$n-$$ link set eth0 up; done
ip -n kb-cli-$$ addr add 10.1.0.2/24 dev eth0; ip -n kb-be-$$ addr add 10.2.0.2/24 dev eth0
ip -n kb-cli-$$ route add default via 10.1.0.1; ip -n kb-be-$$ route add default via 10.2.0.1
sysctl -qw net.ipv4.ip_forward=1
T=$(mktemp -d)
timeout 100 ip netns exec kb-be-$$ python3 $W/tests/integration/it-udp.py echo --listen 10.2.0.2:5001 --tag be --max-seconds 90 & EP=$!
printf '[udpmux]\ncontrol = %s/c.sock\nworkers = 1\nlog-level = notice\nnew-flow-rate = 0\nmax-flows-per-prefix = 0\n[listen]\naddress = 10.1.0.1:4000\n[route plain]\nmatch = prefix 706c61696e\nforward = 10.2.0.2:5001\ndatapath = %s\n' "$T" "$DP" > $T/u.conf
timeout 100 $W/build/daemon/udpmuxd -c $T/u.conf > $T/log 2>&1 & DPID=$!
sleep 1
echo "== direct to the backend"; ip netns exec kb-cli-$$ python3 $W/tests/integration/kernel-measure/rtt.py 10.2.0.2 5001 300 10.1.0.2
echo "== through udpmuxd datapath=$DP"; ip netns exec kb-cli-$$ python3 $W/tests/integration/kernel-measure/rtt.py 10.1.0.1 4000 300 10.1.0.2
if [ "$DP" = kernel ]; then
  q0=$($W/build/ctl/udpmuxctl -s $T/c.sock stats | tr ' ' '\n' | sed -n 's/^kernel.queued=//p')
  UP=$(pgrep -P $DPID); tid=$(grep -l umx-kdp /proc/$UP/task/*/comm | head -1 | xargs dirname)
  c0=$(awk '{print $14+$15}' $tid/stat)
  ip netns exec kb-cli-$$ python3 $W/tests/integration/kernel-measure/flood.py 10.1.0.1 4000 20000 10.1.0.2
  sleep 1
  q1=$($W/build/ctl/udpmuxctl -s $T/c.sock stats | tr ' ' '\n' | grep -E '^kernel\.')
  c1=$(awk '{print $14+$15}' $tid/stat)
  echo "$q1"; echo "queued before: $q0"; echo "queue thread CPU: $(( (c1 - c0) * 10 )) ms for $(( $(echo "$q1" | sed -n 's/^kernel.queued=//p') - q0 )) verdicts"
fi
kill $DPID $EP 2>/dev/null; wait 2>/dev/null || true
ip netns del kb-cli-$$; ip netns del kb-be-$$; rm -rf $T
