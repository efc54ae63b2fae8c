/* storm: the kernel's connection-storm ceiling on loopback.
 *
 * T threads; each owns L listeners and runs, blocking, socket -> connect -> accept -> close
 * (client, then server, or the other way round) as fast as it can. On loopback the three-way
 * handshake finishes inside connect(), so accept() returns at once and a connection never leaves
 * the thread that made it: this is the fastest any program can open and close connections here.
 *
 *   storm [-t threads] [-L listeners per thread] [-m fin|srvfin|rst] [-d seconds] [-P base port]
 *
 *   fin     the client closes first: TIME_WAIT on the client's 4-tuples (hence several listeners)
 *   srvfin  the server closes first: TIME_WAIT on the server side
 *   rst     SO_LINGER {1, 0} on the client: a RST, no TIME_WAIT anywhere
 *
 * Prints one line: `conn_per_s=N ok=N failed=N seconds=S`. Bounded by -d (at most 600 s).
 */
#include "common.h"
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

enum { FIN, SRVFIN, RST };
static int threads = 2, per_thread = 1, mode = FIN, base = 20000;
static double seconds = 10;
static atomic_long ok_total, failed_total;
static atomic_int stopping;

static void *loop(void *arg) {
    long id = (long)arg, ok = 0, failed = 0;
    int lfd[64];
    struct sockaddr_in dst[64];
    struct linger rst = {1, 0};
    for (int i = 0; i < per_thread; i++) {
        int port = base + (int)id * per_thread + i;
        lfd[i] = listen_v4("127.0.0.1", port, 4096, 0, 0);
        memset(&dst[i], 0, sizeof dst[i]);
        dst[i].sin_family = AF_INET;
        dst[i].sin_port = htons((unsigned short)port);
        dst[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    }
    for (unsigned long k = 0; !atomic_load_explicit(&stopping, memory_order_relaxed); k++) {
        int i = (int)(k % (unsigned long)per_thread);
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (c < 0) { failed++; continue; }
        if (mode == RST) setsockopt(c, SOL_SOCKET, SO_LINGER, &rst, sizeof rst);
        if (connect(c, (struct sockaddr *)&dst[i], sizeof dst[i]) < 0) {
            failed++;
            close(c);
            continue;
        }
        int a = accept4(lfd[i], NULL, NULL, 0);
        if (a < 0) { failed++; close(c); continue; }
        if (mode == SRVFIN) { close(a); close(c); } else { close(c); close(a); }
        ok++;
    }
    atomic_fetch_add(&ok_total, ok);
    atomic_fetch_add(&failed_total, failed);
    for (int i = 0; i < per_thread; i++) close(lfd[i]);
    return NULL;
}

int main(int argc, char **argv) {
    int o;
    while ((o = getopt(argc, argv, "t:L:m:d:P:")) != -1) {
        switch (o) {
        case 't': threads = atoi(optarg); break;
        case 'L': per_thread = atoi(optarg); break;
        case 'm': mode = !strcmp(optarg, "rst") ? RST : !strcmp(optarg, "srvfin") ? SRVFIN : FIN; break;
        case 'd': seconds = atof(optarg); break;
        case 'P': base = atoi(optarg); break;
        default: fprintf(stderr, "usage: storm [-t T] [-L L] [-m fin|srvfin|rst] [-d S] [-P port]\n"); return 2;
        }
    }
    if (threads < 1 || threads > 64 || per_thread < 1 || per_thread > 64 || seconds <= 0 || seconds > 600) {
        fprintf(stderr, "storm: -t and -L must be 1-64, -d 0-600 s\n");
        return 2;
    }
    pthread_t th[64];
    double t0 = mono();
    for (long i = 0; i < threads; i++) pthread_create(&th[i], NULL, loop, (void *)i);
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stopping, 1);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    double el = mono() - t0;
    printf("conn_per_s=%.0f ok=%ld failed=%ld seconds=%.3f\n", (double)atomic_load(&ok_total) / el,
           atomic_load(&ok_total), atomic_load(&failed_total), el);
    return 0;
}
