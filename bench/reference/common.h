/* common.h: small helpers shared by the kernel reference programs (bench/reference). */
#ifndef PS_REF_COMMON_H
#define PS_REF_COMMON_H
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* mono: seconds on the monotonic clock. */
static inline double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* die: print a message with errno's text and exit 1. */
static inline void die(const char *what) {
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    exit(1);
}

/* parse_v4: "a.b.c.d:port" -> sockaddr_in; loopback (127/8) only, these programs never leave it. */
static inline int parse_v4(const char *s, struct sockaddr_in *out) {
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((unsigned short)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &out->sin_addr) != 1) return -1;
    if ((ntohl(out->sin_addr.s_addr) >> 24) != 127) return -1;
    return 0;
}

/* listen_v4: a listening socket on 127.0.0.1:port (SO_REUSEADDR, optional SO_REUSEPORT). */
static inline int listen_v4(const char *addr, int port, int backlog, int reuseport, int flags) {
    int one = 1, s = socket(AF_INET, SOCK_STREAM | flags, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (s < 0) die("socket");
    inet_pton(AF_INET, addr, &sa.sin_addr);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport) setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) < 0) die("bind");
    if (listen(s, backlog) < 0) die("listen");
    return s;
}

static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* pct: the q-quantile (0..1) of n sorted values, nearest rank. */
static inline double pct(const double *v, long n, double q) {
    long i;
    if (n <= 0) return 0;
    i = (long)(q * (double)n + 0.5) - 1;
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return v[i];
}
#endif
