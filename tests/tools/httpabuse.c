/* httpabuse - bad HTTP clients against the worker's metrics port, for the
 * observability suite: what they cost the job loop is measured there.
 *
 *   httpabuse PORT flood COUNT       COUNT GET /metrics, one connection each
 *   httpabuse PORT garbage COUNT     COUNT connections sending junk bytes
 *   httpabuse PORT slowloris COUNT SECONDS
 *                                    COUNT connections sending a header a
 *                                    byte at a time, for up to SECONDS
 *   httpabuse PORT scrape RATE       GET /metrics RATE times a second, as a
 *                                    busy Prometheus would, until SIGTERM
 *
 * Prints one line of figures; exit 0 when it could run at all. */
#include "clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int port;

/* From 127.0.0.2, to 127.0.0.1: the abuser is a client of its own, as
 * on a network, so that the server's per-client limit applies to it and
 * not to the suite's probes. */
static int connect_local(void)
{
    struct sockaddr_in sa = {0}, from = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    from.sin_family = AF_INET;
    from.sin_addr.s_addr = htonl(0x7f000002);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&from, sizeof from) != 0) {
        close(fd);
        return -1;
    }
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Sends request and says it is all (shutdown), reads to EOF or for
 * wait_ms at most; the status code, 0 when none came, -1 when refused. */
static int exchange(const char *request, size_t len, int wait_ms)
{
    char reply[65536];
    size_t got = 0;
    ssize_t n = 1;
    int fd = connect_local(), status = 0;
    struct pollfd p;

    if (fd < 0)
        return -1;
    if (write(fd, request, len) < 0) {
        close(fd);
        return 0;
    }
    shutdown(fd, SHUT_WR);
    p.fd = fd;
    p.events = POLLIN;
    while (poll(&p, 1, wait_ms) > 0 && (n = read(fd, reply + got, sizeof reply - 1 - got)) > 0) {
        got += (size_t)n;
        if (got == sizeof reply - 1)
            got = 16; /* keep the status line, drop the rest */
    }
    reply[got] = '\0';
    if (strncmp(reply, "HTTP/1.", 7) == 0)
        status = atoi(reply + 9);
    close(fd);
    return status;
}

static int flood(long count)
{
    static const char request[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    long ok = 0, failed = 0;
    double start = clock_now();

    for (long i = 0; i < count; i++) {
        if (exchange(request, sizeof request - 1, 10000) == 200)
            ok++;
        else
            failed++;
    }
    printf("flood: %ld requests, %ld answered 200, %ld not, %.0f requests/s\n", count, ok, failed,
           count / (clock_now() - start));
    return 0;
}

static volatile sig_atomic_t stop;

static void on_term(int signo)
{
    (void)signo;
    stop = 1;
}

static int scrape(long rate)
{
    static const char request[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    long ok = 0, failed = 0;
    double start = clock_now(), next = start;

    signal(SIGTERM, on_term);
    /* the worker was just started: its port opens within a second */
    while (!stop && exchange(request, sizeof request - 1, 1000) != 200 && clock_now() < start + 5)
        poll(NULL, 0, 10);
    start = next = clock_now();
    while (!stop) {
        double now = clock_now();
        if (now < next) {
            poll(NULL, 0, (int)((next - now) * 1000) + 1);
            continue;
        }
        next += 1.0 / (double)rate;
        if (exchange(request, sizeof request - 1, 10000) == 200)
            ok++;
        else
            failed++;
    }
    printf("scrape: %ld scrapes answered 200, %ld not, %.0f a second\n", ok, failed,
           (ok + failed) / (clock_now() - start));
    return 0;
}

static int garbage(long count)
{
    char junk[700];
    long answered = 0, closed = 0;
    uint64_t x = 88172645463325252ULL;

    for (long i = 0; i < count; i++) {
        int status;
        for (size_t k = 0; k < sizeof junk; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            junk[k] = (char)(x & 0xff);
        }
        if (i % 3 == 1) /* a request line, then junk headers */
            memcpy(junk, "GET / HTTP/1.1\r\n", 16);
        if (i % 3 == 2) /* a method that is not one */
            memcpy(junk, "\x01\x02 /metrics HTTP/9.9\r\n\r\n", 24);
        /* a server may wait for the rest of a request until its idle
         * timeout: hang up after 200 ms, as a flood would */
        status = exchange(junk, sizeof junk, 200);
        if (status > 0)
            answered++;
        else if (status == 0)
            closed++;
    }
    printf("garbage: %ld requests, %ld answered (4xx), %ld closed or left unanswered\n", count,
           answered, closed);
    return 0;
}

static int slowloris(long count, double seconds)
{
    int *fds = calloc((size_t)count, sizeof *fds);
    double *closed_at = calloc((size_t)count, sizeof *closed_at);
    double start = clock_now(), next = start, median;
    long open_now = 0, refused = 0, closed = 0;

    if (fds == NULL || closed_at == NULL)
        return 1;
    for (long i = 0; i < count; i++) {
        fds[i] = connect_local();
        if (fds[i] < 0 || write(fds[i], "GET /metrics HTTP/1.1\r\nX-a: ", 28) < 0)
            refused++;
        else
            open_now++;
    }
    while (open_now > 0 && clock_now() - start < seconds) {
        if (clock_now() >= next) { /* one more header byte on each, each second */
            for (long i = 0; i < count; i++)
                if (fds[i] >= 0 && closed_at[i] == 0)
                    (void)send(fds[i], "a", 1, MSG_NOSIGNAL);
            next += 1;
        }
        for (long i = 0; i < count; i++) {
            struct pollfd p = {fds[i], POLLIN, 0};
            char b[512];
            if (fds[i] < 0 || closed_at[i] != 0 || poll(&p, 1, 0) <= 0)
                continue;
            if (read(fds[i], b, sizeof b) <= 0) { /* the server gave up on it */
                closed_at[i] = clock_now() - start;
                closed++;
                open_now--;
            }
        }
        poll(NULL, 0, 20);
    }
    /* the median time to close, of those the server closed */
    {
        double sorted[4096];
        long n = 0;
        for (long i = 0; i < count && n < 4096; i++)
            if (closed_at[i] > 0)
                sorted[n++] = closed_at[i];
        for (long i = 1; i < n; i++)
            for (long j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
                double t = sorted[j];
                sorted[j] = sorted[j - 1];
                sorted[j - 1] = t;
            }
        median = n ? sorted[n / 2] : 0;
    }
    printf("slowloris: %ld connections, %ld refused at once, %ld closed by the server (median "
           "after %.1f s), %ld still open after %.0f s\n",
           count, refused, closed, median, open_now, seconds);
    for (long i = 0; i < count; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    free(closed_at);
    return 0;
}

int main(int argc, char **argv)
{
    long count = argc > 3 ? strtol(argv[3], NULL, 10) : 0;

    if (argc < 4 || (port = atoi(argv[1])) <= 0 || count <= 0) {
        fprintf(stderr,
                "usage: httpabuse PORT flood|garbage COUNT | PORT slowloris COUNT SECONDS | "
                "PORT scrape RATE\n");
        return 2;
    }
    if (strcmp(argv[2], "flood") == 0)
        return flood(count);
    if (strcmp(argv[2], "garbage") == 0)
        return garbage(count);
    if (strcmp(argv[2], "scrape") == 0)
        return scrape(count);
    if (strcmp(argv[2], "slowloris") == 0 && argc == 5)
        return slowloris(count, strtod(argv[4], NULL));
    fprintf(stderr, "httpabuse: unknown mode '%s'\n", argv[2]);
    return 2;
}
