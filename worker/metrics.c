/* metrics.c - the worker's exposition and readiness; see metrics.h. */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

/* From 0.5 ms to 30 s: a lookup or a confirm on a local server takes
 * about a millisecond, a job in a backlog waits seconds behind the
 * prefetch window, and a database outage holds jobs for the outage. */
static const double bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                0.25,   0.5,   1,      2.5,   5,    10,    30};
#define N_BOUNDS (sizeof bounds / sizeof bounds[0])

void worker_metrics_init(struct worker_metrics *m, double start_time)
{
    memset(m, 0, sizeof *m);
    histogram_init(&m->job_seconds, bounds, N_BOUNDS);
    histogram_init(&m->lookup_seconds, bounds, N_BOUNDS);
    histogram_init(&m->confirm_seconds, bounds, N_BOUNDS);
    m->start_time = start_time;
}

bool worker_metrics_ready(const struct worker_metrics *m, char *why, size_t len)
{
    if (m->draining)
        snprintf(why, len, "shutting down");
    else if (!m->broker_up)
        snprintf(why, len, "not connected to the broker: %s",
                 m->broker_error[0] ? m->broker_error : "connecting");
    else if (!m->db_up)
        snprintf(why, len, "not connected to the database: %s",
                 m->db_error[0] ? m->db_error : "connecting");
    else if (!m->consuming)
        snprintf(why, len, "not consuming: %s",
                 m->suspects ? "running redelivered jobs one at a time" : "starting");
    else
        snprintf(why, len, "%s", "");
    return why[0] == '\0';
}

static bool counter(struct buf *out, const char *name, const char *help, unsigned long long value)
{
    return prom_family(out, name, "counter", help) && prom_sample_int(out, name, NULL, value);
}

static bool gauge(struct buf *out, const char *name, const char *help, double value)
{
    return prom_family(out, name, "gauge", help) && prom_sample(out, name, NULL, value);
}

bool worker_metrics_render(const struct worker_metrics *m, const char *version, struct buf *out)
{
    const struct worker_stats *s = &m->stats;
    struct buf labels = {0};
    char why[256];
    bool ok;

    /* One family, the outcome a label: sum(greet_jobs_total) is every
     * job this process settled. */
    ok = prom_family(out, "greet_jobs_total", "counter",
                     "Jobs settled by this process, by outcome: ok (replied, acked), dead "
                     "(its dead-letter copy confirmed, acked: a poison job or a refused "
                     "reply), returned (handed back to the queue).") &&
         prom_sample_int(out, "greet_jobs_total", "outcome=\"ok\"", s->jobs_ok) &&
         prom_sample_int(out, "greet_jobs_total", "outcome=\"dead\"", s->jobs_failed) &&
         prom_sample_int(out, "greet_jobs_total", "outcome=\"returned\"", s->jobs_returned);
    ok = ok &&
         counter(out, "greet_jobs_unauthorized_total",
                 "Jobs refused for their token (GREET_AUTH=jwt): answered unauthorized, dead; "
                 "counted in greet_jobs_total{outcome=\"dead\"} too.",
                 s->jobs_unauthorized) &&
         counter(out, "greet_replies_unroutable_total",
                 "Replies the broker returned: no queue by their reply_to name.",
                 s->replies_unroutable) &&
         counter(out, "greet_replies_refused_total",
                 "Replies the broker refused every time: their jobs went to the dead queue.",
                 s->replies_refused) &&
         counter(out, "greet_replies_retried_total",
                 "Replies the broker refused (basic.nack), to be published again.",
                 s->replies_retried) &&
         counter(out, "greet_lookups_total", "Preference lookups (one database round trip each).",
                 s->lookups) &&
         counter(out, "greet_lookup_failures_total", "Preference lookups that failed or timed out.",
                 s->lookup_failures) &&
         counter(out, "greet_broker_connects_total", "Connections made to the broker.",
                 m->broker_connects) &&
         counter(out, "greet_db_connects_total", "Connections made to the database.",
                 s->db_connects) &&
         counter(out, "greet_consumer_cancels_total",
                 "Times the broker cancelled the consumer (jobs queue deleted, node lost).",
                 s->consumer_cancels);
    ok = ok &&
         gauge(out, "greet_jobs_in_flight", "Deliveries in hand, not yet acked.", m->in_flight) &&
         gauge(out, "greet_suspects_held",
               "Redelivered jobs in hand, held to be run one at a time.", m->suspects) &&
         gauge(out, "greet_broker_connected", "1 while connected to the broker.", m->broker_up) &&
         gauge(out, "greet_db_connected", "1 while connected to the database.", m->db_up) &&
         gauge(out, "greet_ready", "1 while ready: connected to both servers and consuming.",
               worker_metrics_ready(m, why, sizeof why));
    ok = ok &&
         prom_histogram(out, "greet_job_duration_seconds",
                        "From a job's delivery to the broker's confirm of its last publish "
                        "(its ack follows in the same loop turn).",
                        &m->job_seconds) &&
         prom_histogram(out, "greet_lookup_duration_seconds",
                        "One preference lookup: a batch's database round trip.",
                        &m->lookup_seconds) &&
         prom_histogram(out, "greet_confirm_latency_seconds",
                        "From a publish to the broker's confirm of it.", &m->confirm_seconds);
    ok = ok && gauge(out, "greet_process_start_time_seconds",
                     "Start time of the process since the Unix epoch, in seconds.", m->start_time);
    ok = ok && prom_label(&labels, "version", version) &&
         prom_family(out, "greet_build_info", "gauge",
                     "Always 1; the build's version as a label.") &&
         prom_sample(out, "greet_build_info", labels.data, 1);
    buf_free(&labels);
    return ok;
}
