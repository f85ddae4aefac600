#!/usr/bin/env bash
# kernel-measure/burst.sh - by hand, as root: unshare -n bash tests/integration/kernel-measure/burst.sh
# Three 200-datagram bursts on new flows through a kernel route: answered,
# first answer, inversions. UD/UC: another udpmuxd/udpmuxctl.
set -eu
W=$(cd "$(dirname "$0")/../../.." && pwd)
ip link set lo up
for n in cli be; do ip netns add kq-$n-$$; ip link add v-$n type veth peer name eth0 netns kq-$n-$$; done
ip addr add 10.1.0.1/24 dev v-cli; ip addr add 10.2.0.1/24 dev v-be; ip link set v-cli up; ip link set v-be up
for n in cli be; do ip -n kq-$n-$$ link set lo up; ip -n kq-$n-$$ link set eth0 up; done
ip -n kq-cli-$$ addr add 10.1.0.2/24 dev eth0; ip -n kq-be-$$ addr add 10.2.0.2/24 dev eth0
ip -n kq-cli-$$ route add default via 10.1.0.1; ip -n kq-be-$$ route add default via 10.2.0.1
sysctl -qw net.ipv4.ip_forward=1
T=$(mktemp -d)
timeout 60 ip netns exec kq-be-$$ python3 $W/tests/integration/it-udp.py echo --listen 10.2.0.2:5001 --tag be --max-seconds 50 & EP=$!
printf '[udpmux]\ncontrol = %s/c.sock\nworkers = 1\nlog-level = notice\n[listen]\naddress = 10.1.0.1:4000\n[route plain]\nmatch = prefix 736571\nforward = 10.2.0.2:5001\ndatapath = kernel\n' "$T" > $T/u.conf
timeout 60 ${UD:-$W/build/daemon/udpmuxd} -c $T/u.conf > $T/log 2>&1 & DPID=$!
sleep 1
for i in 1 2 3; do ip netns exec kq-cli-$$ python3 $W/tests/integration/kernel-measure/burst.py 10.1.0.1 4000 10.1.0.2 200; done
${UC:-$W/build/ctl/udpmuxctl} -s $T/c.sock stats | grep '^kernel'
kill $DPID $EP; wait 2>/dev/null || true
ip netns del kq-cli-$$; ip netns del kq-be-$$; rm -rf $T
