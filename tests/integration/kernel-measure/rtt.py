import socket, sys, time, statistics
to = (sys.argv[1], int(sys.argv[2])); n = int(sys.argv[3]); bind = sys.argv[4]
first, second = [], []
for i in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((bind, 0)); s.settimeout(2)
    for lst in (first, second):
        t = time.perf_counter(); s.sendto(b"plain-x", to); s.recvfrom(2048); lst.append((time.perf_counter() - t) * 1e6)
    s.close()
q = lambda l: "p50 %.0f us p90 %.0f us" % (statistics.median(l), sorted(l)[int(len(l) * .9)])
print("first datagram (new flow):", q(first)); print("second datagram (same flow):", q(second))
