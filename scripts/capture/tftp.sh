#!/bin/bash
# Regenerates tests/data/pcap/tftp.pcap: tftpd-hpa (in.tftpd) on
# 127.0.0.1:6969 serving: tftp-hpa `get` (RRQ octet, 3 DATA/ACK rounds), tftp-hpa
# `put` (WRQ), a missing file (ERROR), and curl's TFTP client with
# blksize/tsize options (RRQ with options, OACK). Note that the server answers
# from a fresh ephemeral port (the transfer ID), so the filter covers all UDP
# between the two loopback endpoints.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

# in.tftpd resolves -a with AI_ADDRCONFIG, which fails in a netns that has
# only loopback addresses: give the netns a veth pair with a documentation
# address (no traffic uses it).
ip link add umx0 type veth peer name umx1
ip addr add 192.0.2.1/24 dev umx0
ip link set umx0 up
ip link set umx1 up

cd "$UMX_TMP"
mkdir -p root
head -c 1200 /usr/share/common-licenses/GPL-3 >root/hello.txt
printf 'upload from udpmux\n' >up.txt
chmod 777 root

umx_capture_start tftp.pcap "udp and host 127.0.0.1"
timeout 30 in.tftpd -L -c -s -u root -a 127.0.0.1:6969 "$UMX_TMP/root" >tftpd.log 2>&1 &
umx_wait_udp 6969
timeout 5 tftp -m octet 127.0.0.1 6969 -c get hello.txt got.txt
timeout 5 tftp -m octet 127.0.0.1 6969 -c put up.txt up.txt
timeout 5 tftp 127.0.0.1 6969 -c get missing.txt nothing.txt >/dev/null 2>&1 || true
timeout 5 curl -s --tftp-blksize 1024 -o curl.txt tftp://127.0.0.1:6969/hello.txt
cmp -s root/hello.txt got.txt || echo "tftp get failed" >&2
cmp -s root/hello.txt curl.txt || echo "curl tftp failed" >&2
umx_capture_stop
