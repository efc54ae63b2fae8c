/* sink: a minimal epoll server for the kernel reference: hold (keep every connection until the
 * peer closes) or echo (write back what arrives). One thread, level-triggered epoll; listeners may
 * share a port with SO_REUSEPORT (-R) so several sinks split the connections.
 *
 *   sink -p PORT[,PORT...] [-m hold|echo] [-d seconds] [-R]
 *
 * Bounded by -d (default 30 s, at most 600); prints `accepted=N` on exit.
 */
#include "common.h"
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

int main(int argc, char **argv) {
    char ports[1024] = "17001";
    int echo = 0, reuseport = 0, one = 1, o;
    double limit = 30;
    while ((o = getopt(argc, argv, "p:m:d:R")) != -1) {
        switch (o) {
        case 'p': snprintf(ports, sizeof ports, "%s", optarg); break;
        case 'm': echo = !strcmp(optarg, "echo"); break;
        case 'd': limit = atof(optarg); break;
        case 'R': reuseport = 1; break;
        default: fprintf(stderr, "usage: sink -p PORT[,...] [-m hold|echo] [-d s] [-R]\n"); return 2;
        }
    }
    if (limit <= 0 || limit > 600) { fprintf(stderr, "sink: -d 0-600 s\n"); return 2; }
    int ep = epoll_create1(0), nl = 0, lfd[64];
    for (char *tok = strtok(ports, ","); tok && nl < 64; tok = strtok(NULL, ",")) {
        lfd[nl] = listen_v4("127.0.0.1", atoi(tok), 65535, reuseport, SOCK_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)nl | (1ull << 63)};
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd[nl], &ev);
        nl++;
    }
    long accepted = 0;
    char buf[65536];
    struct epoll_event evs[1024];
    double t0 = mono();
    while (mono() - t0 < limit) {
        int k = epoll_wait(ep, evs, 1024, 100);
        for (int j = 0; j < k; j++) {
            uint64_t d = evs[j].data.u64;
            if (d >> 63) {
                int a;
                while ((a = accept4(lfd[d & 63], NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (echo) setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* answers at once */
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u64 = (uint64_t)a};
                    epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev);
                    accepted++;
                }
                continue;
            }
            int fd = (int)d;
            ssize_t r = read(fd, buf, sizeof buf);
            if (r > 0 && echo) {
                ssize_t off = 0;
                while (off < r) {
                    ssize_t w = write(fd, buf + off, (size_t)(r - off));
                    if (w <= 0) break; /* the peer's receive buffer is full: a reference client never lets it fill */
                    off += w;
                }
            } else if (r == 0 || (r < 0 && errno != EAGAIN)) {
                close(fd);
            }
        }
    }
    printf("accepted=%ld\n", accepted);
    return 0;
}
