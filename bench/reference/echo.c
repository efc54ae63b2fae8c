/* echo: the reference client for requests at a fixed rate. C connections to an echo server, a total
 * of R messages per second spread evenly over them (message k is due at k/R seconds and goes out on
 * connection k mod C), B bytes each; every message is timed from its intended send time to the last
 * byte of its echo, so a late send counts against the latency (no coordinated omission).
 * One thread, epoll_pwait2 with nanosecond timeouts until the next message is due.
 *
 *   echo -D 127.0.0.1:PORT[,...] [-c conns] [-r msgs/s] [-b bytes] [-d seconds]
 *
 * Prints `sent=N received=N seconds=S rate=R p50_us=X p99_us=Y p999_us=Z max_us=M`.
 * Bounded by -d (at most 600 s) plus 2 s to collect the last answers.
 */
#include "common.h"
#include <sys/epoll.h>
#include <unistd.h>

#define WINDOW 4096 /* outstanding messages per connection */

struct conn {
    int fd;
    long got;              /* bytes of the head message received so far */
    long head, tail;       /* ring of intended times of outstanding messages */
    double due[WINDOW];
};

int main(int argc, char **argv) {
    char dests[4096] = "127.0.0.1:17001";
    long nconn = 300, bytes = 64;
    double rate = 30000, seconds = 10;
    int o;
    while ((o = getopt(argc, argv, "D:c:r:b:d:")) != -1) {
        switch (o) {
        case 'D': snprintf(dests, sizeof dests, "%s", optarg); break;
        case 'c': nconn = atol(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'b': bytes = atol(optarg); break;
        case 'd': seconds = atof(optarg); break;
        default: fprintf(stderr, "usage: echo -D addr:port[,...] [-c C] [-r R] [-b B] [-d S]\n"); return 2;
        }
    }
    if (nconn < 1 || nconn > 19000 || rate <= 0 || rate > 1e7 || bytes < 1 || bytes > 65536 || seconds <= 0 || seconds > 600) {
        fprintf(stderr, "echo: -c 1-19000, -r 0-1e7, -b 1-65536, -d 0-600 s\n");
        return 2;
    }
    struct sockaddr_in dst[64];
    int nd = 0;
    for (char *tok = strtok(dests, ","); tok && nd < 64; tok = strtok(NULL, ","))
        if (parse_v4(tok, &dst[nd++]) < 0) { fprintf(stderr, "echo: %s: not a loopback ip:port\n", tok); return 2; }
    struct conn *cs = calloc((size_t)nconn, sizeof *cs);
    long total = (long)(rate * seconds);
    double *lat = malloc(sizeof(double) * (size_t)(total + 1));
    char *msg = malloc((size_t)bytes), buf[65536];
    int ep = epoll_create1(0), one = 1;
    if (!cs || !lat || !msg || ep < 0) die("setup");
    memset(msg, 'x', (size_t)bytes);
    for (long i = 0; i < nconn; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0 || connect(s, (struct sockaddr *)&dst[i % nd], sizeof dst[i % nd]) < 0) die("connect");
        setsockopt(s, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof one);
        cs[i].fd = s;
        struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    }
    long sent = 0, received = 0, overflow = 0;
    struct epoll_event evs[1024];
    double t0 = mono(), end = t0 + seconds, drain = end + 2;
    for (;;) {
        double now = mono();
        while (sent < total && t0 + (double)sent / rate <= now) {
            struct conn *c = &cs[sent % nconn];
            if (c->tail - c->head >= WINDOW) { overflow++; sent++; continue; }
            if (write(c->fd, msg, (size_t)bytes) != bytes) die("write");
            c->due[c->tail++ % WINDOW] = t0 + (double)sent / rate;
            sent++;
        }
        if ((sent >= total && received + overflow >= sent) || now > drain) break;
        double next = sent < total ? t0 + (double)sent / rate : drain;
        double wait = next - mono();
        if (wait < 0) wait = 0;
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        int k = epoll_pwait2(ep, evs, 1024, &ts, NULL);
        double at = mono();
        for (int j = 0; j < k; j++) {
            struct conn *c = &cs[evs[j].data.u64];
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r <= 0) die("read");
            c->got += r;
            while (c->got >= bytes && c->head < c->tail) {
                lat[received++] = at - c->due[c->head++ % WINDOW];
                c->got -= bytes;
            }
        }
        (void)end;
    }
    double secs = mono() - t0;
    qsort(lat, (size_t)received, sizeof(double), cmp_double);
    printf("sent=%ld received=%ld seconds=%.3f rate=%.0f p50_us=%.0f p99_us=%.0f p999_us=%.0f max_us=%.0f window_full=%ld\n",
           sent, received, secs, (double)received / seconds, pct(lat, received, 0.5) * 1e6, pct(lat, received, 0.99) * 1e6,
           pct(lat, received, 0.999) * 1e6, received ? lat[received - 1] * 1e6 : 0.0, overflow);
    return 0;
}
