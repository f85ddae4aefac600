#!/bin/bash
# Regenerates tests/data/pcap/bittorrent-dht.pcap, utp.pcap and
# bittorrent-tracker.pcap from two python3-libtorrent (libtorrent-rasterbar
# 2.0.8) sessions on 127.0.0.1 (see bittorrent.py): DHT KRPC between the
# sessions, a uTP transfer of a 48 KiB torrent, and the UDP tracker exchange
# (BEP 15) between libtorrent and opentracker (Debian opentracker package,
# UDP port 6970).
# DHT and uTP share the sessions' ports; they are split by the first payload
# byte ('d' = bencoded dictionary for DHT, version nibble 1 for uTP).
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

here=$(cd "$(dirname "$0")" && pwd)
umx_capture_start .bt-all.pcap "udp port 6881 or udp port 6891 or udp port 6970"
chmod 755 "$UMX_TMP" # opentracker drops to nobody
# Debian's opentracker is built in whitelist ("private") mode
timeout 20 /usr/bin/python3 "$here/bittorrent.py" "$UMX_TMP" --print-infohash >"$UMX_TMP/whitelist"
chmod 644 "$UMX_TMP/whitelist"
timeout 30 opentracker -i 127.0.0.1 -p 6970 -P 6970 -u nobody -w "$UMX_TMP/whitelist" \
    >"$UMX_TMP/opentracker.log" 2>&1 &
umx_wait_udp 6970
timeout 25 /usr/bin/python3 "$here/bittorrent.py" "$UMX_TMP" || echo "bittorrent.py failed" >&2
umx_capture_stop
all=$UMX_PCAP_DIR/.bt-all.pcap
tcpdump -Z root -r "$all" -w "$UMX_PCAP_DIR/bittorrent-tracker.pcap" "udp port 6970" 2>/dev/null
tcpdump -Z root -r "$all" -w "$UMX_PCAP_DIR/bittorrent-dht.pcap" "not udp port 6970 and udp[8] = 0x64" 2>/dev/null
tcpdump -Z root -r "$all" -w "$UMX_PCAP_DIR/utp.pcap" "not udp port 6970 and udp[8] & 0x0f = 1" 2>/dev/null
tcpdump -r "$all" -n "not udp port 6970 and udp[8] != 0x64 and udp[8] & 0x0f != 1" 2>/dev/null |
    sed 's/^/unsplit: /' >&2
rm -f "$all"
chmod 644 "$UMX_PCAP_DIR"/bittorrent-*.pcap "$UMX_PCAP_DIR/utp.pcap"
for f in bittorrent-tracker bittorrent-dht utp; do
    echo "$f.pcap: $(tcpdump -r "$UMX_PCAP_DIR/$f.pcap" -n 2>/dev/null | wc -l) packets"
done
