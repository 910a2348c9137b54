/* metrics.h - what a worker shows on /metrics and /readyz.  Pure: the
 * loop fills a struct worker_metrics (its counters, the states it can see,
 * its histograms); this module writes it in the Prometheus text format
 * and says whether the worker is ready.  status.c moves a copy of it to
 * the HTTP thread. */
#ifndef GREET_WORKER_METRICS_H
#define GREET_WORKER_METRICS_H

#include "buf.h"
#include "prom.h"
#include "worker.h"

#include <stdbool.h>

struct worker_metrics {
    struct worker_stats stats; /* the loop's counters, copied */
    unsigned long long broker_connects;
    unsigned in_flight; /* deliveries in hand (the ledger's entries) */
    unsigned suspects;  /* of them, redelivered ones held to run alone */
    bool broker_up, db_up, consuming, draining;
    char broker_error[192], db_error[192]; /* why the last attempt failed; masked */
    struct histogram job_seconds;          /* delivery to the ack's decision */
    struct histogram lookup_seconds;       /* one batch's database round trip */
    struct histogram confirm_seconds;      /* publish to the broker's confirm */
    double start_time;                     /* Unix time */
};

/* Zero counters, the histograms' buckets set. */
void worker_metrics_init(struct worker_metrics *m, double start_time);
/* The whole exposition, appended to out; false when out cannot grow. */
bool worker_metrics_render(const struct worker_metrics *m, const char *version, struct buf *out);
/* Ready: connected to both servers and consuming.  Writes "" when ready,
 * else a one-line reason; returns whether ready. */
bool worker_metrics_ready(const struct worker_metrics *m, char *why, size_t len);

#endif
