/* mqtool - what the test suites ask the broker directly:
 *   mqtool depth QUEUE...   messages ready in each queue, one per line
 *   mqtool purge QUEUE...   empty the queues
 *   mqtool wait QUEUE N SECONDS
 *                           poll QUEUE's depth until it reaches N; print the
 *                           seconds that took (exit 1 on timeout)
 *   mqtool watch QUEUE [SECONDS [MARKER]]
 *                           every SECONDS (default 0.1) print one line,
 *                           "EPOCH DEPTH" (wall-clock seconds, messages
 *                           ready), until SIGTERM; rides out broker faults
 *                           by reconnecting (no line while it cannot ask).
 *                           With MARKER, every half second the line has two
 *                           more fields, "EPOCH DEPTH BUSY OURS": the CPU
 *                           seconds the machine has spent (all CPUs, from
 *                           /proc/stat) and those of "our" processes (the
 *                           tree of the process that started the watch, and
 *                           of every process whose command line holds
 *                           MARKER), so a test can tell when other work
 *                           took the CPUs
 *   mqtool declare-refusing QUEUE
 *                           declare QUEUE (classic, durable) with
 *                           x-max-length 0 and x-overflow reject-publish: it
 *                           refuses every message, a publisher in confirm
 *                           mode gets basic.nack
 * AMQP_URL as for the programs.  A passive queue.declare answers from the
 * queue itself, unlike rabbitmqctl's periodically refreshed metrics. */
#include "clock.h"
#include "config.h"
#include "link.h"
#include "log.h"
#include "mq.h"
#include "mq_url.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define USAGE                                                                                      \
    "usage: mqtool depth|purge QUEUE... | mqtool wait QUEUE N SECONDS |\n"                         \
    "       mqtool watch QUEUE [SECONDS [MARKER]] | mqtool declare-refusing QUEUE\n"

static volatile sig_atomic_t stop_watching;

static void on_stop(int signo)
{
    (void)signo;
    stop_watching = 1;
}

static double wall_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- CPU accounting, for mqtool watch ... MARKER ---------------------- */

struct proc {
    pid_t pid, ppid;
    unsigned long long ticks; /* utime + stime + cutime + cstime */
    bool ours;
};

/* CPU seconds the machine has spent busy, all CPUs together. */
static double machine_busy(void)
{
    unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                       steal = 0;
    FILE *in = fopen("/proc/stat", "r");

    if (in == NULL)
        return 0;
    if (fscanf(in, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle,
               &iowait, &irq, &softirq, &steal) < 4)
        user = nice = system = irq = softirq = steal = 0;
    fclose(in);
    return (double)(user + nice + system + irq + softirq + steal) / (double)sysconf(_SC_CLK_TCK);
}

/* Reads /proc/PID/stat; false when the process is gone. */
static bool read_proc(pid_t pid, struct proc *p)
{
    char path[64], line[1024], *after;
    unsigned long long utime, stime;
    long long cutime, cstime;
    int ppid;
    FILE *in;

    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    if ((in = fopen(path, "r")) == NULL)
        return false;
    after = fgets(line, sizeof line, in) ? strrchr(line, ')') : NULL;
    fclose(in);
    /* After the command name: state ppid pgrp session tty_nr tpgid flags
     * minflt cminflt majflt cmajflt utime stime cutime cstime */
    if (after == NULL ||
        sscanf(after + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", &ppid,
               &utime, &stime, &cutime, &cstime) != 5)
        return false;
    p->pid = pid;
    p->ppid = (pid_t)ppid;
    p->ticks = utime + stime + (unsigned long long)(cutime > 0 ? cutime : 0) +
               (unsigned long long)(cstime > 0 ? cstime : 0);
    p->ours = false;
    return true;
}

static bool cmdline_holds(pid_t pid, const char *marker)
{
    char path[64], text[8192];
    size_t len;
    FILE *in;

    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
    if ((in = fopen(path, "r")) == NULL)
        return false;
    len = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\0')
            text[i] = ' ';
    text[len] = '\0';
    return strstr(text, marker) != NULL;
}

/* CPU seconds of our processes: the tree under root, and the trees under
 * every process whose command line holds marker.  A child's time moves to
 * its parent's cutime when it is reaped, so the sum stays whole as long as
 * the parent is ours too. */
static double ours_busy(pid_t root, const char *marker, struct proc **procs, size_t *cap)
{
    DIR *dir = opendir("/proc");
    struct dirent *entry;
    size_t n = 0;
    unsigned long long ticks = 0;
    bool changed = true;

    if (dir == NULL)
        return 0;
    while ((entry = readdir(dir)) != NULL) {
        char *end;
        long pid = strtol(entry->d_name, &end, 10);
        if (*end != '\0' || pid <= 0)
            continue;
        if (n == *cap) {
            size_t more = *cap ? 2 * *cap : 256;
            struct proc *grown = realloc(*procs, more * sizeof **procs);
            if (grown == NULL)
                break;
            *procs = grown;
            *cap = more;
        }
        if (read_proc((pid_t)pid, &(*procs)[n])) {
            struct proc *p = &(*procs)[n];
            p->ours = p->pid == root || cmdline_holds(p->pid, marker);
            n++;
        }
    }
    closedir(dir);
    /* Descendants of ours are ours: a handful of passes over a few hundred
     * processes. */
    while (changed) {
        changed = false;
        for (size_t i = 0; i < n; i++) {
            if ((*procs)[i].ours)
                continue;
            for (size_t j = 0; j < n; j++) {
                if ((*procs)[j].ours && (*procs)[j].pid == (*procs)[i].ppid) {
                    (*procs)[i].ours = changed = true;
                    break;
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if ((*procs)[i].ours)
            ticks += (*procs)[i].ticks;
    return (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

static int watch(struct link *link, const char *queue, double interval, const char *marker)
{
    struct proc *procs = NULL;
    size_t procs_cap = 0;
    pid_t root = getppid();
    double next_account = 0;
    char err[512];
    int wait_ms = (int)(interval * 1000.0 + 0.5);

    if (wait_ms < 1)
        wait_ms = 1;
    /* SIGTERM ends the watch, exit status 0: an expected end, not a death
     * that a shell would report. */
    {
        struct sigaction action = {0};
        action.sa_handler = on_stop;
        sigemptyset(&action.sa_mask);
        sigaction(SIGTERM, &action, NULL);
        sigaction(SIGINT, &action, NULL);
    }
    while (!stop_watching) {
        unsigned long messages;

        if (link_ensure(link, clock_now(), true /* quiet */)) {
            if (mq_queue_depth(link->mq, queue, &messages, err, sizeof err)) {
                int printed;
                double now = wall_now();
                /* Scanning /proc costs more than the rest: twice a second. */
                if (marker != NULL && now >= next_account) {
                    double busy = machine_busy();
                    next_account = now + 0.5;
                    printed = printf("%.3f %lu %.2f %.2f\n", wall_now(), messages, busy,
                                     ours_busy(root, marker, &procs, &procs_cap));
                } else {
                    printed = printf("%.3f %lu\n", now, messages);
                }
                if (printed < 0 || fflush(stdout) != 0)
                    break; /* whoever reads us is gone */
            } else {
                link_lost(link, clock_now(), err, 0);
            }
        }
        poll(NULL, 0, wait_ms);
    }
    link_close(link);
    free(procs);
    return 0;
}

static bool rpc_ok(amqp_rpc_reply_t reply, const char *what)
{
    if (reply.reply_type == AMQP_RESPONSE_NORMAL)
        return true;
    if (reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        fprintf(stderr, "mqtool: %s: %s\n", what, amqp_error_string2(reply.library_error));
    else if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *close = reply.reply.decoded;
        fprintf(stderr, "mqtool: %s: %u %.*s\n", what, close->reply_code,
                (int)close->reply_text.len, (const char *)close->reply_text.bytes);
    } else {
        fprintf(stderr, "mqtool: %s: refused by the broker\n", what);
    }
    return false;
}

/* The adapter declares quorum queues only; this one needs arguments of
 * its own, so it talks to librabbitmq directly. */
static int declare_refusing(const char *url_text, const char *queue)
{
    struct amqp_connection_info info;
    char *url = strdup(url_text);
    amqp_connection_state_t conn = amqp_new_connection();
    amqp_socket_t *socket = conn ? amqp_tcp_socket_new(conn) : NULL;
    amqp_table_entry_t entries[2];
    amqp_table_t arguments = {2, entries};
    int status = 1;

    if (url == NULL || socket == NULL || amqp_parse_url(url, &info) != AMQP_STATUS_OK || info.ssl) {
        fprintf(stderr, "mqtool: AMQP_URL: cannot parse it (or amqps://, not supported here)\n");
        goto out;
    }
    if (amqp_socket_open(socket, info.host, info.port) != AMQP_STATUS_OK) {
        fprintf(stderr, "mqtool: cannot connect to %s:%d\n", info.host, info.port);
        goto out;
    }
    if (!rpc_ok(amqp_login(conn, info.vhost[0] ? info.vhost : "/", 0, 131072, 0,
                           AMQP_SASL_METHOD_PLAIN, info.user, info.password),
                "login"))
        goto out;
    amqp_channel_open(conn, 1);
    if (!rpc_ok(amqp_get_rpc_reply(conn), "open channel"))
        goto out;
    entries[0].key = amqp_cstring_bytes("x-max-length");
    entries[0].value.kind = AMQP_FIELD_KIND_I64;
    entries[0].value.value.i64 = 0;
    entries[1].key = amqp_cstring_bytes("x-overflow");
    entries[1].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[1].value.value.bytes = amqp_cstring_bytes("reject-publish");
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0 /* passive */, 1 /* durable */,
                       0 /* exclusive */, 0 /* auto_delete */, arguments);
    if (!rpc_ok(amqp_get_rpc_reply(conn), "declare"))
        goto out;
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    status = 0;
out:
    if (conn)
        amqp_destroy_connection(conn);
    free(url);
    return status;
}

int main(int argc, char **argv)
{
    static const struct config_urls urls = {mq_url_list_mask, NULL};
    struct config cfg;
    struct link link;
    char err[512];
    struct mq *mq;
    int status = 0;

    double started = clock_now();

    if (argc < 3 || (strcmp(argv[1], "depth") != 0 && strcmp(argv[1], "purge") != 0 &&
                     (strcmp(argv[1], "wait") != 0 || argc != 5) &&
                     (strcmp(argv[1], "watch") != 0 || argc > 5) &&
                     (strcmp(argv[1], "declare-refusing") != 0 || argc != 3))) {
        fputs(USAGE, stderr);
        return 2;
    }
    log_init("mqtool", LOG_ERROR);
    log_set_fd(2);
    /* The broker settings as every program reads them (AMQP_URL, ...). */
    if (config_load(&cfg, PROGRAM_REPLIES, &urls, 1, argv, getenv, err, sizeof err) != CONFIG_OK) {
        fprintf(stderr, "mqtool: %s\n", err);
        return 2;
    }
    cfg.heartbeat = 0; /* short-lived, or (watch) asking every interval */
    link_init(&link, &cfg, "mqtool", NULL, NULL);
    link.backoff.cap = 1.0; /* watch samples a restarted broker from its first second */
    if (strcmp(argv[1], "declare-refusing") == 0)
        status = declare_refusing(cfg.amqp_url, argv[2]);
    if (strcmp(argv[1], "watch") == 0) {
        double interval = argc >= 4 ? strtod(argv[3], NULL) : 0.1;
        if (!(interval > 0 && interval <= 60)) {
            fputs(USAGE, stderr);
            return 2;
        }
        link.settings.timeout = 2.0; /* a frozen broker: try again soon */
        status = watch(&link, argv[2], interval, argc == 5 ? argv[4] : NULL);
    }
    if (strcmp(argv[1], "declare-refusing") == 0 || strcmp(argv[1], "watch") == 0) {
        config_free(&cfg);
        return status;
    }
    if (!link_ensure(&link, clock_now(), true /* quiet: reported here */)) {
        fprintf(stderr, "mqtool: %s\n", link.error);
        config_free(&cfg);
        return 1;
    }
    mq = link.mq;
    if (strcmp(argv[1], "wait") == 0) {
        unsigned long want = strtoul(argv[3], NULL, 10), messages = 0;
        double limit = started + strtod(argv[4], NULL);
        /* Every 5 ms: fine enough for drains of seconds. */
        while (mq_queue_depth(mq, argv[2], &messages, err, sizeof err) && messages < want &&
               clock_now() < limit)
            poll(NULL, 0, 5);
        status = messages >= want ? 0 : 1;
        printf("%.3f\n", clock_now() - started);
        link_close(&link);
        config_free(&cfg);
        return status;
    }
    for (int i = 2; i < argc && status == 0; i++) {
        unsigned long messages;
        if (strcmp(argv[1], "depth") == 0) {
            if (mq_queue_depth(mq, argv[i], &messages, err, sizeof err))
                printf("%lu\n", messages);
            else
                status = 1;
        } else if (!mq_queue_purge(mq, argv[i], err, sizeof err)) {
            status = 1;
        }
    }
    if (status != 0)
        fprintf(stderr, "mqtool: %s\n", err);
    link_close(&link);
    config_free(&cfg);
    return status;
}
