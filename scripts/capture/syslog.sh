#!/bin/bash
# Regenerates tests/data/pcap/syslog.pcap: util-linux logger --udp sending
# RFC 3164 and RFC 5424 messages (with and without structured data, several
# facilities/priorities) to a socat UDP sink on 127.0.0.1:5514. Syslog over
# UDP is one-way: there are no replies.
# shellcheck source=common.sh disable=SC2164 # common.sh sets -e
. "$(dirname "$0")/common.sh"
umx_enter_netns "$@"

cd "$UMX_TMP"
umx_capture_start syslog.pcap "udp port 5514"
timeout 20 socat -u UDP4-RECV:5514,bind=127.0.0.1 OPEN:sink.log,creat >/dev/null 2>&1 &
umx_wait_udp 5514
L="timeout 5 logger --udp --server 127.0.0.1 --port 5514"
$L --rfc3164 -t umxtest -p user.notice "hello from logger, RFC 3164"
$L --rfc3164 -t sshd -i -p auth.info "Accepted publickey for test from 192.0.2.7 port 50022"
$L --rfc3164 -p local7.debug "no tag given"
$L --rfc5424 -t umxtest -p daemon.warning "hello from logger, RFC 5424"
$L --rfc5424=notq -t umxtest -p local0.err --sd-id origin@32473 --sd-param 'software="udpmux"' \
    "with structured data"
$L --rfc5424=notime,nohost -t app -p kern.emerg "RFC 5424 without time and host"
$L --octet-count --rfc5424 -t umxtest -p user.info "octet-counted framing (RFC 6587 style)"
umx_capture_stop
