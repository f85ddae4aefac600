#!/usr/bin/env bash
# shellcheck disable=SC2034 # bounded retry loops count without reading the counter
# it-tftp.sh - tftpd-hpa behind udpmuxd with `upstream = unconnected`: the
# server answers from a new port (RFC 1350 TIDs), the mux accepts it from
# the backend's host and follows it. tftp and curl fetch files byte-exact
# through the shared port; an upload arrives byte-exact too.
. "$(dirname "$0")/lib.sh"
it_init "$@"
it_addrconfig_fix

mkdir -p "$T/root"
chmod 777 "$T/root"
head -c 1200 /dev/urandom >"$T/root/small.bin"  # 3 blocks
head -c 300000 /dev/urandom >"$T/root/big.bin"  # 586 blocks of 512
head -c 5000 /dev/urandom >"$T/up.bin"
it_bg tftpd 60 in.tftpd -L -c -s -u root -a 127.0.0.1:5069 "$T/root"
it_wait_udp 5069

it_conf "$T/udpmux.conf" <<CONF
[listen]
address = 127.0.0.1:$IT_PORT

[route dns]
match = dns
action = drop

[route tftp]
match = tftp
forward = 127.0.0.1:5069
upstream = unconnected
CONF
it_daemon "$T/udpmux.conf"

cd "$T" || exit 1
timeout 20 tftp -m octet 127.0.0.1 "$IT_PORT" -c get small.bin got-small.bin
cmp "$T/root/small.bin" got-small.bin || it_fail "small file differs"
timeout 30 tftp -m octet 127.0.0.1 "$IT_PORT" -c get big.bin got-big.bin
cmp "$T/root/big.bin" got-big.bin || it_fail "big file differs"
timeout 20 curl -s --tftp-blksize 1024 -o curl-big.bin "tftp://127.0.0.1:$IT_PORT/big.bin"
cmp "$T/root/big.bin" curl-big.bin || it_fail "curl (blksize 1024) file differs"
timeout 20 tftp -m octet 127.0.0.1 "$IT_PORT" -c put up.bin up.bin
cmp "$T/up.bin" "$T/root/up.bin" || it_fail "uploaded file differs"
it_alive udpmuxd || it_fail "udpmuxd died"
it_pass
