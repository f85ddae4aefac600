#!/bin/bash
# Regenerates tests/data/pcap/snmp.pcap: Net-SNMP snmpd on 127.0.0.1:1161
# answering snmpget (v2c and v1 GetRequest), snmpgetnext (v2c) and snmpbulkget
# (v2c GetBulk), community "public", then SNMPv3 (USM user "umx", SHA/AES,
# authPriv: engine discovery Report, then an encrypted GetRequest/Response).
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

cd "$UMX_TMP"
cat >snmpd.conf <<CONF
agentaddress udp:127.0.0.1:1161
rocommunity public 127.0.0.1
sysLocation udpmux test lab
sysContact test@example.test
createUser umx SHA "umx-auth-pass-1" AES "umx-priv-pass-1"
rouser umx priv
CONF
export SNMP_PERSISTENT_DIR=$UMX_TMP/persist

umx_capture_start snmp.pcap "udp port 1161"
MIBS=none timeout 30 snmpd -f -Lo -C -c snmpd.conf -p "$UMX_TMP/snmpd.pid" -I -smux,mteTrigger,mteTriggerConf \
    >snmpd.log 2>&1 &
umx_wait_udp 1161 || { cat snmpd.log >&2; exit 1; }
o="-r 0 -t 2 -m none" # numeric OIDs: the MIB files are non-free in Debian
timeout 5 snmpget $o -v2c -c public 127.0.0.1:1161 1.3.6.1.2.1.1.1.0 1.3.6.1.2.1.1.5.0 >/dev/null
timeout 5 snmpget $o -v1 -c public 127.0.0.1:1161 1.3.6.1.2.1.1.3.0 >/dev/null
timeout 5 snmpgetnext $o -v2c -c public 127.0.0.1:1161 1.3.6.1.2.1.1.6 >/dev/null
timeout 5 snmpbulkget $o -v2c -c public -Cr3 127.0.0.1:1161 1.3.6.1.2.1.2.2.1.2 >/dev/null
timeout 5 snmpget $o -v2c -c public 127.0.0.1:1161 1.3.6.1.2.1.1.4.0 >/dev/null
timeout 5 snmpget $o -v3 -l authPriv -u umx -a SHA -A umx-auth-pass-1 -x AES -X umx-priv-pass-1 \
    127.0.0.1:1161 1.3.6.1.2.1.1.5.0 >/dev/null || echo "snmpget v3 failed" >&2
umx_capture_stop
