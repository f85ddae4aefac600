import socket, sys, time
to = (sys.argv[1], int(sys.argv[2])); n = int(sys.argv[3]); bind = sys.argv[4]
t = time.perf_counter(); sent = 0
while sent < n:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(500)]
    for s in socks:
        s.bind((bind, 0)); s.sendto(b"plain-flood", to); sent += 1
    for s in socks: s.close()
print("sent %d new flows in %.2f s (%.0f/s)" % (sent, time.perf_counter() - t, sent / (time.perf_counter() - t)))
