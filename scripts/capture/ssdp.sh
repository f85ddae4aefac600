#!/bin/bash
# Regenerates tests/data/pcap/ssdp.pcap: miniupnpc's upnpc (2.2.4) searching
# for an IGD with SSDP M-SEARCH to 239.255.255.250:1900 on the loopback of a
# private netns (multicast enabled on lo). The answering device is CRAFTED
# (python3, per the UPnP Device Architecture 2.0 SSDP section): it replies
# "HTTP/1.1 200 OK" to each M-SEARCH and multicasts NOTIFY ssdp:alive and
# ssdp:byebye. upnpc's follow-up HTTP fetch (TCP, refused) is not captured.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

ip link set lo multicast on
ip route add 239.0.0.0/8 dev lo
cd "$UMX_TMP"
cat >device.py <<'PY'
import socket, struct, sys, time
GROUP, PORT = "239.255.255.250", 1900
UUID = "uuid:2fac1234-31f8-11b4-a222-08002b34c003"
LOC = "http://127.0.0.1:1/rootDesc.xml"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", PORT))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton(GROUP), socket.inet_aton("127.0.0.1")))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
s.settimeout(0.2)
def notify(nts, nt):
    msg = ("NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n"
           "CACHE-CONTROL: max-age=1800\r\nLOCATION: %s\r\nNT: %s\r\nNTS: %s\r\n"
           "SERVER: Linux/6.1 UPnP/1.1 udpmux-test/0.1\r\nUSN: %s::%s\r\n\r\n"
           % (LOC, nt, nts, UUID, nt))
    s.sendto(msg.encode(), (GROUP, PORT))
IGD = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
notify("ssdp:alive", "upnp:rootdevice")
notify("ssdp:alive", IGD)
answered, end = 0, time.monotonic() + float(sys.argv[1])
while time.monotonic() < end and answered < 8:
    try:
        data, peer = s.recvfrom(2048)
    except socket.timeout:
        continue
    if not data.startswith(b"M-SEARCH * HTTP/1.1\r\n"):
        continue
    st = IGD
    for line in data.decode(errors="replace").split("\r\n"):
        if line.upper().startswith("ST:"):
            st = line[3:].strip()
    msg = ("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=1800\r\nDATE: Wed, 25 Nov 2026 10:00:00 GMT\r\n"
           "EXT:\r\nLOCATION: %s\r\nSERVER: Linux/6.1 UPnP/1.1 udpmux-test/0.1\r\nST: %s\r\n"
           "USN: %s::%s\r\n\r\n" % (LOC, st, UUID, st))
    s.sendto(msg.encode(), peer)
    answered += 1
notify("ssdp:byebye", IGD)
PY

umx_capture_start ssdp.pcap "udp port 1900"
timeout 10 /usr/bin/python3 device.py 4 &
dev=$!
umx_wait_udp 1900
timeout 5 upnpc -m 127.0.0.1 -s >upnpc.log 2>&1 || true
wait "$dev" || echo "ssdp device failed" >&2
umx_capture_stop
