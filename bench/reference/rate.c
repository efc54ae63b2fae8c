/* rate: the reference client for requests at a fixed rate (issue 13). C connections to a server
 * that answers every request with a fixed number of bytes (an echo server, or an HTTP server serving
 * one fixed response), a TOTAL of R requests per second spread evenly over them: request k is due at
 * t0 + k/R, in closed form, and goes out on connection k mod C. At most W requests are outstanding on
 * a connection (W = 1: request/response); a request whose time comes while its connection's window
 * is full waits, and the wait counts. Every request is timed from its INTENDED send time to the last
 * byte of its answer (no coordinated omission), into a log-linear histogram (HdrHistogram's layout,
 * 128 sub-buckets per power of two: under 0.8% error, quantiles reported as the bucket's highest
 * value, as hdrhistogram-go does). One thread, non-blocking sockets, epoll_pwait2 with nanosecond
 * timeouts until the next request is due.
 *
 *   rate -D 127.0.0.1:PORT[,...] [-c conns] [-r total/s] [-b bytes] [-d seconds] [-w window]
 *        [-q request] [-a answer bytes] [-W warm-up seconds] [-S [-P p99 limit us] [-n max probes]]
 *
 *   -b B     the request is B bytes of 'x' and its answer B bytes (an echo) [64]
 *   -q TEXT  the request is TEXT instead (\r and \n escapes understood), and -a N its answer's size
 *            in bytes: for a server that answers each request with the same bytes (nginx serving one
 *            static file: its Date header has a fixed width)
 *   -W S     before each run (each probe with -S), S seconds at its rate, not measured, as wrk2
 *            discards its first 10 s (its calibration): bench/run gives every client the same
 *            warm-up, so that the figures compare steady states [0]
 *   -S       search: the highest total rate whose p99 stays within -P (default 5000 us), over probes
 *            of -d seconds on the same connections: the rate doubles from -r until a probe fails,
 *            then bisects between the last pass and the first fail until they are within 5%, at most
 *            -n probes (default 16) in all. A probe fails when its p99 is over the limit or an
 *            answer is missing.
 *
 * Prints, per run (per probe with -S, then a final `search` line):
 *   `conns=C offered=R sent=N received=N lost=N seconds=S rate=A p50_us= p99_us= p999_us= max_us=
 *    service_p99_us= lag_p99_us= cpu_s=`
 * rate is the answers received within the send window per second of it (answers collected in the
 * 2 s after it count as received, not in rate); service_* is from the actual write
 * (what a closed-loop client would report), lag_* from the intended time to the write (the
 * client's own lateness or the window). cpu_s: this process's user + system CPU for the run.
 * Bounded by -d (at most 600 s) plus 2 s per run to collect the last answers, and -n probes.
 */
#include "common.h"
#include <stdint.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <netinet/tcp.h>
#include <unistd.h>

/* ---- log-linear histogram of nanoseconds ---- */
#define SUB_BITS 7
#define SUB (1 << SUB_BITS)
#define NBUCKETS (64 * SUB)

struct hist {
    uint64_t n, max;
    uint64_t c[NBUCKETS];
};

static int hidx(uint64_t v) {
    int msb = v ? 63 - __builtin_clzll(v) : 0;
    int shift = msb > SUB_BITS ? msb - SUB_BITS : 0;
    return shift * SUB + (int)(v >> shift);
}

/* hhigh: the highest value that lands in bucket i. */
static uint64_t hhigh(int i) {
    if (i < 2 * SUB) return (uint64_t)i;
    int shift = i / SUB - 1;
    uint64_t m = (uint64_t)(i - shift * SUB);
    return ((m + 1) << shift) - 1;
}

static void hrec(struct hist *h, double seconds) {
    uint64_t v = seconds <= 0 ? 0 : (uint64_t)(seconds * 1e9);
    if (v > (1ull << 50)) v = 1ull << 50;
    h->c[hidx(v)]++;
    h->n++;
    if (v > h->max) h->max = v;
}

/* hq: the q-quantile in microseconds (rank rounded as hdrhistogram-go's ValueAtQuantile). */
static double hq(const struct hist *h, double q) {
    if (!h->n) return 0;
    uint64_t rank = (uint64_t)(q * (double)h->n + 0.5), seen = 0;
    if (rank < 1) rank = 1;
    for (int i = 0; i < NBUCKETS; i++) {
        seen += h->c[i];
        if (seen >= rank) {
            uint64_t v = hhigh(i);
            return (double)(v < h->max ? v : h->max) / 1e3;
        }
    }
    return (double)h->max / 1e3;
}

/* ---- connections ---- */
struct conn {
    int fd;
    long next;     /* the next request index of this connection not yet written */
    long head;     /* requests answered on this connection (its ring's head) */
    long written;  /* requests written (the ring's tail) */
    long got;      /* bytes of the head answer received so far */
    long outbytes; /* bytes queued but not yet accepted by the kernel */
    int pollout;   /* EPOLLOUT is asked for */
    double *due, *wrote; /* ring of W: intended and actual write times of outstanding requests */
};

static struct conn *cs;
static long nconn = 300, window = 1, reqlen = 64, anslen = 64;
static char *req;
static int ep;
static struct hist lat, svc, lag;

/* flush: write what the connection has queued; the rest waits for EPOLLOUT. */
static void flush(struct conn *c) {
    while (c->outbytes > 0) {
        long off = (reqlen - c->outbytes % reqlen) % reqlen;
        long n = c->outbytes < reqlen - off ? c->outbytes : reqlen - off;
        ssize_t w = write(c->fd, req + off, (size_t)n);
        if (w < 0) {
            if (errno == EAGAIN) break;
            die("write");
        }
        c->outbytes -= w;
    }
    int want = c->outbytes > 0;
    if (want != c->pollout) { /* ask for EPOLLOUT only while bytes wait */
        struct epoll_event ev = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->pollout = want;
    }
}

struct result {
    long sent, received, inwin; /* inwin: answers that came within the send window */
    double seconds, p50, p99, p999, max, svc99, lag99, cpu;
};

static double cpu_now(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           (double)ru.ru_stime.tv_usec * 1e-6;
}

/* run: one run at total rate R for S seconds on the open connections. */
static struct result run(double rate, double seconds) {
    long total = (long)(rate * seconds), due = 0, sent = 0, received = 0, inwin = 0;
    struct epoll_event evs[1024];
    static char buf[1 << 16];
    memset(&lat, 0, sizeof lat);
    memset(&svc, 0, sizeof svc);
    memset(&lag, 0, sizeof lag);
    for (long i = 0; i < nconn; i++) cs[i].next = i, cs[i].head = cs[i].written = cs[i].got = 0;
    double cpu0 = cpu_now(), t0 = mono() + 0.001, drain = t0 + seconds + 2;
    for (;;) {
        double now = mono();
        /* every request whose time has come: written at once unless its connection's window is full */
        for (; due < total && t0 + (double)due / rate <= now; due++) {
            struct conn *c = &cs[due % nconn];
            if (c->next != due || c->written - c->head >= window) continue; /* backlogged: sent on an answer */
            c->due[c->written % window] = t0 + (double)due / rate;
            c->wrote[c->written % window] = now;
            hrec(&lag, now - (t0 + (double)due / rate));
            c->written++, c->next += nconn, sent++;
            c->outbytes += reqlen;
            flush(c);
        }
        if ((due >= total && received >= sent && sent >= total) || now > drain) break;
        double next = due < total ? t0 + (double)due / rate : drain;
        double wait = next - mono();
        if (wait < 0) wait = 0;
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        int k = epoll_pwait2(ep, evs, 1024, &ts, NULL);
        if (k < 0 && errno != EINTR) die("epoll_pwait2");
        double at = mono();
        for (int j = 0; j < k; j++) {
            struct conn *c = evs[j].data.ptr;
            if (evs[j].events & EPOLLOUT) flush(c);
            if (!(evs[j].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r < 0 && errno == EAGAIN) continue;
            if (r <= 0) { fprintf(stderr, "rate: the server closed a connection\n"); exit(1); }
            c->got += r;
            while (c->got >= anslen && c->head < c->written) {
                long slot = c->head % window;
                hrec(&lat, at - c->due[slot]);
                hrec(&svc, at - c->wrote[slot]);
                c->head++, received++;
                if (at <= t0 + seconds) inwin++;
                c->got -= anslen;
            }
            /* the window opened: the connection's requests that are already due go out now, late */
            while (c->next < due && c->written - c->head < window) {
                c->due[c->written % window] = t0 + (double)c->next / rate;
                c->wrote[c->written % window] = at;
                hrec(&lag, at - (t0 + (double)c->next / rate));
                c->written++, c->next += nconn, sent++;
                c->outbytes += reqlen;
            }
            if (c->outbytes) flush(c);
        }
    }
    struct result res = {sent, received, inwin, mono() - t0, hq(&lat, 0.5), hq(&lat, 0.99), hq(&lat, 0.999),
                         (double)lat.max / 1e3, hq(&svc, 0.99), hq(&lag, 0.99), cpu_now() - cpu0};
    /* a run cut short leaves answers in flight: the connections cannot serve another probe */
    if (received < sent) for (long i = 0; i < nconn; i++) cs[i].got = 0;
    return res;
}

static void print(const char *tag, double rate, long total, struct result r, double seconds) {
    printf("%sconns=%ld offered=%.0f sent=%ld received=%ld lost=%ld seconds=%.3f rate=%.0f p50_us=%.0f p99_us=%.0f "
           "p999_us=%.0f max_us=%.0f service_p99_us=%.0f lag_p99_us=%.0f cpu_s=%.3f\n",
           tag, nconn, rate, r.sent, r.received, total - r.received, r.seconds, (double)r.inwin / seconds, r.p50,
           r.p99, r.p999, r.max, r.svc99, r.lag99, r.cpu);
    fflush(stdout);
}

/* unescape: \r, \n, \t and \\ in place; returns the length. */
static long unescape(char *s) {
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '\\' && p[1]) {
            p++;
            *o++ = *p == 'r' ? '\r' : *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
        } else {
            *o++ = *p;
        }
    }
    return o - s;
}

/* lost: whether a warm-up run left answers missing (said on stderr). */
static int lost(struct result w) {
    if (w.received >= w.sent) return 0;
    fprintf(stderr, "rate: the warm-up lost %ld answers\n", w.sent - w.received);
    return 1;
}

int main(int argc, char **argv) {
    char dests[4096] = "127.0.0.1:17001", *text = NULL;
    double rate = 30000, seconds = 10, limit_us = 5000, warm = 0;
    int o, search = 0, probes = 16;
    while ((o = getopt(argc, argv, "D:c:r:b:d:w:q:a:W:SP:n:")) != -1) {
        switch (o) {
        case 'D': snprintf(dests, sizeof dests, "%s", optarg); break;
        case 'c': nconn = atol(optarg); break;
        case 'r': rate = atof(optarg); break;
        case 'b': reqlen = anslen = atol(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'w': window = atol(optarg); break;
        case 'q': text = optarg; break;
        case 'a': anslen = atol(optarg); break;
        case 'W': warm = atof(optarg); break;
        case 'S': search = 1; break;
        case 'P': limit_us = atof(optarg); break;
        case 'n': probes = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: rate -D addr:port[,...] [-c C] [-r R] [-b B | -q TEXT -a N] [-d S] [-w W] "
                            "[-W S] [-S [-P us] [-n probes]]\n");
            return 2;
        }
    }
    if (text) reqlen = unescape(text);
    if (nconn < 1 || nconn > 19000 || rate <= 0 || rate > 1e7 || reqlen < 1 || reqlen > 65536 || anslen < 1 ||
        anslen > 1 << 20 || seconds <= 0 || seconds > 600 || warm < 0 || warm > 600 || window < 1 || window > 1024 || probes < 1 ||
        probes > 64 || limit_us <= 0) {
        fprintf(stderr, "rate: -c 1-19000, -r 0-1e7, -b 1-65536, -a 1-1MiB, -d 0-600 s, -W 0-600 s, -w 1-1024, -n 1-64\n");
        return 2;
    }
    req = malloc((size_t)reqlen);
    if (!req) die("malloc");
    if (text) memcpy(req, text, (size_t)reqlen); else memset(req, 'x', (size_t)reqlen);
    struct sockaddr_in dst[64];
    int nd = 0;
    for (char *tok = strtok(dests, ","); tok && nd < 64; tok = strtok(NULL, ","))
        if (parse_v4(tok, &dst[nd++]) < 0) { fprintf(stderr, "rate: %s: not a loopback ip:port\n", tok); return 2; }
    cs = calloc((size_t)nconn, sizeof *cs);
    ep = epoll_create1(0);
    if (!cs || ep < 0) die("setup");
    for (long i = 0; i < nconn; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (s < 0 || connect(s, (struct sockaddr *)&dst[i % nd], sizeof dst[i % nd]) < 0) die("connect");
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (fcntl(s, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
        cs[i].fd = s;
        cs[i].due = malloc(sizeof(double) * (size_t)window);
        cs[i].wrote = malloc(sizeof(double) * (size_t)window);
        if (!cs[i].due || !cs[i].wrote) die("malloc");
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    }
    /* a warm-up whose answers did not all come leaves them to arrive in the measured run: stop */
    if (!search) {
        if (warm > 0 && lost(run(rate, warm))) return 1;
        print("", rate, (long)(rate * seconds), run(rate, seconds), seconds);
        return 0;
    }
    /* search: double until a probe fails, then bisect; every probe on the same connections */
    double pass = 0, fail = 0, r = rate;
    struct result best = {0};
    for (int p = 0; p < probes; p++) {
        if (warm > 0 && lost(run(r, warm))) break;
        struct result res = run(r, seconds);
        long total = (long)(r * seconds);
        print("probe ", r, total, res, seconds);
        int ok = res.received == total && res.p99 <= limit_us;
        if (res.received < res.sent) break; /* answers lost: the connections cannot be trusted for more */
        if (ok) pass = r, best = res; else fail = r;
        if (fail == 0) r *= 2;
        else if (pass == 0) r /= 2;
        else if (fail / pass <= 1.05) break;
        else r = (pass + fail) / 2;
        if (r > 1e7 || r < 1) break;
    }
    printf("search max_rate=%.0f p99_us=%.0f limit_us=%.0f first_fail=%.0f\n", pass, best.p99, limit_us, fail);
    return 0;
}
