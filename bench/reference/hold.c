/* hold: the kernel's time to open and hold N concurrent loopback connections.
 *
 * One thread, non-blocking connect() and epoll: at most -i connects in flight, the next started as
 * soon as one completes. With -s the socket binds the source address with IP_BIND_ADDRESS_NO_PORT,
 * so connect() still picks the port per destination (docs/ports.md §Binding).
 *
 *   hold -n N -D 127.0.0.1:P1[,127.0.0.1:P2...] [-s 127.0.0.x] [-i inflight] [-T seconds]
 *
 * Prints `established=N failed=N seconds=S connect_p50_us=X connect_p99_us=Y` once every connection
 * is established or failed, then closes them all (RST) and exits. Bounded by -T (default 60 s).
 */
#include "common.h"
#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = 1000, inflight = 1000;
    double limit = 60;
    char dests[4096] = "127.0.0.1:17001", src[64] = "";
    int o;
    while ((o = getopt(argc, argv, "n:D:s:i:T:")) != -1) {
        switch (o) {
        case 'n': n = atol(optarg); break;
        case 'D': snprintf(dests, sizeof dests, "%s", optarg); break;
        case 's': snprintf(src, sizeof src, "%s", optarg); break;
        case 'i': inflight = atol(optarg); break;
        case 'T': limit = atof(optarg); break;
        default: fprintf(stderr, "usage: hold -n N -D addr:port[,...] [-s src] [-i inflight] [-T s]\n"); return 2;
        }
    }
    if (n < 1 || n > 1000000 || inflight < 1 || limit <= 0 || limit > 600) {
        fprintf(stderr, "hold: -n 1-1000000, -i >= 1, -T 0-600 s\n");
        return 2;
    }
    struct sockaddr_in dst[64], from;
    int nd = 0;
    for (char *tok = strtok(dests, ","); tok && nd < 64; tok = strtok(NULL, ","))
        if (parse_v4(tok, &dst[nd++]) < 0) { fprintf(stderr, "hold: %s: not a loopback ip:port\n", tok); return 2; }
    if (src[0]) {
        memset(&from, 0, sizeof from);
        from.sin_family = AF_INET;
        if (inet_pton(AF_INET, src, &from.sin_addr) != 1 || (ntohl(from.sin_addr.s_addr) >> 24) != 127) {
            fprintf(stderr, "hold: -s %s: not a loopback address\n", src);
            return 2;
        }
    }
    int *fds = malloc(sizeof(int) * (size_t)n);
    double *began = malloc(sizeof(double) * (size_t)n), *lat = malloc(sizeof(double) * (size_t)n);
    int ep = epoll_create1(0), one = 1;
    if (!fds || !began || !lat || ep < 0) die("setup");
    long started = 0, pending = 0, established = 0, failed = 0, done = 0;
    double t0 = mono();
    struct epoll_event evs[1024];
    while (done < n && mono() - t0 < limit) {
        while (pending < inflight && started < n) {
            long i = started++;
            int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            fds[i] = s;
            if (s < 0) { failed++; done++; continue; }
            if (src[0]) {
                setsockopt(s, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
                if (bind(s, (struct sockaddr *)&from, sizeof from) < 0) { close(s); fds[i] = -1; failed++; done++; continue; }
            }
            began[i] = mono();
            int r = connect(s, (struct sockaddr *)&dst[i % nd], sizeof dst[i % nd]);
            if (r == 0) { lat[established++] = mono() - began[i]; done++; continue; }
            if (errno != EINPROGRESS) { close(s); fds[i] = -1; failed++; done++; continue; }
            struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = (uint64_t)i};
            epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
            pending++;
        }
        int k = epoll_wait(ep, evs, 1024, 100);
        for (int j = 0; j < k; j++) {
            long i = (long)evs[j].data.u64;
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &len);
            epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
            pending--;
            done++;
            if (err) { close(fds[i]); fds[i] = -1; failed++; } else lat[established++] = mono() - began[i];
        }
    }
    double secs = mono() - t0;
    qsort(lat, (size_t)established, sizeof(double), cmp_double);
    printf("established=%ld failed=%ld seconds=%.3f connect_p50_us=%.0f connect_p99_us=%.0f\n", established, failed,
           secs, pct(lat, established, 0.50) * 1e6, pct(lat, established, 0.99) * 1e6);
    fflush(stdout);
    struct linger rst = {1, 0};
    for (long i = 0; i < started; i++)
        if (fds[i] >= 0) { setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &rst, sizeof rst); close(fds[i]); }
    return established == n ? 0 : 1;
}
