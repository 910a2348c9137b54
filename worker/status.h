/* status.h - the worker's /metrics, /healthz and /readyz.
 *
 * The loop owns every number; now and then it publishes a copy of its
 * struct worker_metrics here, and the HTTP thread (http.h) answers from
 * the last copy.  Publishing never blocks the loop: when the HTTP thread
 * holds the copy, the loop tries again on a later turn (it asks for a
 * short poll timeout meanwhile).
 *
 *   /metrics  the copy, in the Prometheus text format;
 *   /healthz  200 while the loop turns: its last publish is younger than
 *             the stall limit.  A broker or database outage leaves it
 *             200: restarting a worker does not bring a server back;
 *   /readyz   200 while connected to both servers and consuming, else 503
 *             with the reason on one line. */
#ifndef GREET_STATUS_H
#define GREET_STATUS_H

#include "metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

/* The loop publishes at most this often while busy, and every turn while
 * idle (a turn is at most a second): what a scrape sees is this old. */
#define STATUS_PUBLISH_INTERVAL 0.05

struct status {
    pthread_mutex_t lock;
    struct worker_metrics shown; /* the last copy published, under lock */
    double published_at;         /* clock_now() of it, under lock */
    double stall_limit;          /* /healthz: seconds without a publish */
    struct http_server *http;
    bool started;        /* status_start() ran: the lock exists */
    double last_publish; /* the loop's own: when it last published */
    bool pending;        /* the loop's own: a publish is owed */
    unsigned state;      /* the loop's own: the state last published */
};

/* Starts serving on addr ("" : off, and everything below does nothing).
 * false with err filled when the port cannot be had. */
bool status_start(struct status *st, const char *addr, double stall_limit, char *err,
                  size_t errlen);
/* Whether a publish is due at now: the interval passed, one is owed, or
 * what /readyz answers from changed (state: any bits the caller derives
 * readiness from). */
bool status_due(const struct status *st, double now, unsigned state);
/* Publishes m unless the HTTP thread holds the copy (then it stays due). */
void status_publish(struct status *st, const struct worker_metrics *m, double now, unsigned state);
void status_stop(struct status *st);

#endif
