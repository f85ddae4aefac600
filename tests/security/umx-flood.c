/*
 * umx-flood.c - spoofed-source UDP flood for the security tests (C5, C7).
 *
 *   umx-flood -d 127.0.0.1 -p PORT -s 127.100.0.0 -n 1000000 [-P PORTS]
 *             [-r PPS] [-m TEXT] [-t SECONDS] [-F]
 *
 * Sends n datagrams, each from a distinct source (address, port): the
 * address walks up from -s (a loopback address: 127.0.0.0/8 is local, so the
 * packets never leave the test's network namespace), PORTS source ports per
 * address (-F: one fixed source, 127.x.y.z:20000, a single flow). Raw IPv4 (IPPROTO_RAW implies
 * IP_HDRINCL: the kernel fills the IP checksum and length), UDP checksum 0 (allowed on IPv4),
 * sendmmsg in batches of 256, paced to PPS (0: as fast as possible), and stopped after SECONDS
 * whatever the count. Prints "sent N in S s (R pps)". Needs CAP_NET_RAW (the tests run as root in
 * their own namespace).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sendmmsg */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 256
#define MAXPAY 512

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *dst = "127.0.0.1", *src = "127.100.0.0", *msg = "umx-flood";
    unsigned long n = 1000000, pps = 0, ports = 16, port = 0, secs = 120, sent = 0;
    struct in_addr da, sa0;
    struct sockaddr_in to = {.sin_family = AF_INET};
    static uint8_t pkt[BATCH][sizeof(struct iphdr) + sizeof(struct udphdr) + MAXPAY];
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH];
    size_t plen;
    double t0, t;
    int fd, opt, fixed = 0;

    while ((opt = getopt(argc, argv, "d:p:s:n:P:r:m:t:F")) != -1) {
        switch (opt) {
        case 'd':
            dst = optarg;
            break;
        case 'p':
            port = strtoul(optarg, NULL, 10);
            break;
        case 's':
            src = optarg;
            break;
        case 'n':
            n = strtoul(optarg, NULL, 10);
            break;
        case 'P':
            ports = strtoul(optarg, NULL, 10);
            break;
        case 'r':
            pps = strtoul(optarg, NULL, 10);
            break;
        case 'm':
            msg = optarg;
            break;
        case 't':
            secs = strtoul(optarg, NULL, 10);
            break;
        case 'F':
            fixed = 1;
            break;
        default:
            fprintf(stderr, "usage: umx-flood -d DST -p PORT -s SRC -n N [-P PORTS] [-r PPS] "
                            "[-m TEXT] [-t SECONDS]\n");
            return 2;
        }
    }
    plen = strlen(msg);
    if (!port || port > 65535 || !ports || ports > 60000 || plen > MAXPAY ||
        inet_pton(AF_INET, dst, &da) != 1 || inet_pton(AF_INET, src, &sa0) != 1) {
        fprintf(stderr, "umx-flood: bad arguments\n");
        return 2;
    }
    /* sources must stay in 127.0.0.0/8: never a packet for another network */
    if ((ntohl(sa0.s_addr) >> 24) != 127 || (ntohl(da.s_addr) >> 24) != 127 ||
        ntohl(sa0.s_addr) + n / ports + 1 > 0x7fffffffu) {
        fprintf(stderr, "umx-flood: source and destination must be in 127.0.0.0/8\n");
        return 2;
    }
    fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    if (fd < 0) {
        perror("umx-flood: raw socket");
        return 1;
    }
    to.sin_addr = da;
    memset(mm, 0, sizeof(mm));
    for (int i = 0; i < BATCH; i++) {
        struct iphdr *ip = (struct iphdr *)(void *)pkt[i];
        struct udphdr *u = (struct udphdr *)(void *)(pkt[i] + sizeof(*ip));
        memset(pkt[i], 0, sizeof(pkt[i]));
        ip->version = 4;
        ip->ihl = 5;
        ip->ttl = 64;
        ip->protocol = IPPROTO_UDP;
        ip->daddr = da.s_addr;
        u->dest = htons((uint16_t)port);
        u->len = htons((uint16_t)(sizeof(*u) + plen));
        memcpy(pkt[i] + sizeof(*ip) + sizeof(*u), msg, plen);
        iov[i].iov_base = pkt[i];
        iov[i].iov_len = sizeof(*ip) + sizeof(*u) + plen;
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
        mm[i].msg_hdr.msg_name = &to;
        mm[i].msg_hdr.msg_namelen = sizeof(to);
    }
    t0 = now_s();
    while (sent < n) {
        unsigned k = n - sent < BATCH ? (unsigned)(n - sent) : BATCH;
        int r;
        for (unsigned i = 0; i < k; i++) {
            unsigned long idx = fixed ? 0 : sent + i;
            struct iphdr *ip = (struct iphdr *)(void *)pkt[i];
            struct udphdr *u = (struct udphdr *)(void *)(pkt[i] + sizeof(*ip));
            ip->saddr = htonl(ntohl(sa0.s_addr) + (uint32_t)(idx / ports));
            u->source = htons((uint16_t)(20000 + idx % ports));
        }
        r = sendmmsg(fd, mm, k, 0);
        if (r < 0) {
            if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN)
                continue;
            perror("umx-flood: sendmmsg");
            return 1;
        }
        sent += (unsigned long)r;
        t = now_s() - t0;
        if (t > (double)secs)
            break;
        if (pps) {
            double due = (double)sent / (double)pps;
            if (due > t) {
                struct timespec ts;
                double w = due - t;
                ts.tv_sec = (time_t)w;
                ts.tv_nsec = (long)((w - (double)ts.tv_sec) * 1e9);
                nanosleep(&ts, NULL);
            }
        }
    }
    t = now_s() - t0;
    printf("sent %lu in %.2f s (%.0f pps)\n", sent, t, t > 0 ? (double)sent / t : 0.0);
    close(fd);
    return 0;
}
