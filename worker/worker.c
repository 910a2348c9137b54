/* worker.c - the worker's event loop; see worker.h.
 *
 * The loop only moves bytes: it reports what happened to the ledger
 * (ledger.h), which holds every job in hand and decides what to look up,
 * which suspect runs, what to ack and whether to take more deliveries;
 * and it matches the broker's confirms to publishes with the confirm
 * tracker (confirms.h).  What it keeps itself is per-job data the ledger
 * has no use for (the body, the reply's fields), and connection plumbing. */
#include "worker.h"

#include "backoff.h"
#include "buf.h"
#include "clock.h"
#include "confirms.h"
#include "db.h"
#include "fault.h"
#include "greet.h"
#include "job.h"
#include "ledger.h"
#include "link.h"
#include "log.h"
#include "metrics.h"
#include "mq.h"
#include "reply.h"
#include "status.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CONTENT_TYPE_JSON "application/json"
/* How long a connect may take, and how long past its statement timeout a
 * lookup may go before the server is taken for stalled or gone. */
#define CONNECT_TIMEOUT 10.0
#define DB_GRACE        2.0
#define POLL_CAP_MS     1000
/* A publish to the status board that found it busy is tried again this
 * soon (status.h). */
#define STATUS_RETRY 0.01
/* Broker events handled before the loop looks at anything else. */
#define EVENTS_PER_TURN 4096
/* A slot's buffer may keep this much between jobs; a huge body must not
 * pin its memory for the life of the process. */
#define SLOT_KEEP 4096

/* The error codes of failures that are the worker's to name, beside the
 * job decoder's (invalid_json, invalid_job, too_large). */
#define ERROR_BAD_PREFERENCES "bad_preferences"
#define ERROR_REPLY_REFUSED   "reply_refused"
#define ERROR_UNAUTHORIZED    "unauthorized"

/* What a job needs once its frames are gone: the delivery as it came (its
 * body and the properties a dead copy keeps) and, once decoded, what its
 * reply needs.  The fields lie back to back, NUL-terminated, in one
 * buffer that the slot's next job reuses. */
enum field {
    F_BODY,
    F_CONTENT_TYPE,
    F_MESSAGE_ID,
    F_CORRELATION_ID,
    F_REPLY_TO, /* as delivered */
    F_JOB_ID,   /* decoded: "" when none could be read */
    F_NAME,
    F_REPLY_QUEUE, /* resolved: never empty */
    F_CORRELATION, /* resolved: the job's correlation id */
    N_FIELDS,
};

struct job_slot {
    struct buf text;
    uint32_t at[N_FIELDS], len[N_FIELDS];
    unsigned present; /* a bit per field */
    bool has_user_id;
    long long user_id;
    bool redelivered; /* the broker's flag: delivered before */
    long long delivery_count;
    double delivered_at, published_at; /* for the histograms */
};

struct worker {
    const struct config *cfg;
    const struct token_verifier *verifier; /* NULL: tokens not checked */
    struct worker_stats *stats;
    struct link link;
    struct db *db;

    struct ledger ledger;
    struct job_slot *slots; /* beside the ledger, indexed by its slots */
    struct confirms confirms;
    unsigned *plan;         /* the ledger's answer: slots to look up */
    long long *lookup_ids;  /* their user_ids */
    uint64_t *single_acks;  /* the ledger's answer: tags to ack one by one */
    char broker_error[512]; /* a failure seen where the loss cannot be handled */
    struct backoff random;  /* the ledger's coin */

    struct job job; /* the delivery being decoded */
    struct buf message, reply;
    struct backoff db_backoff;
    double db_retry_at, lookup_retry_at;
    bool draining;
    double drain_deadline;
    double next_stats;

    /* What /metrics shows: the histograms live here; the rest is
     * copied from the state above when published (fill_metrics). */
    struct worker_metrics metrics;
    struct status status;
    double lookup_started;
    char db_error[192]; /* why the database was last lost */
};

static void log_stats(const struct worker *w, const char *event)
{
    struct log_line line;

    log_begin(&line, LOG_INFO, event);
    log_int(&line, "jobs_ok", (long long)w->stats->jobs_ok);
    log_int(&line, "jobs_failed", (long long)w->stats->jobs_failed);
    if (w->verifier != NULL)
        log_int(&line, "jobs_unauthorized", (long long)w->stats->jobs_unauthorized);
    log_int(&line, "replies_unroutable", (long long)w->stats->replies_unroutable);
    log_int(&line, "replies_refused", (long long)w->stats->replies_refused);
    log_int(&line, "replies_retried", (long long)w->stats->replies_retried);
    log_int(&line, "jobs_returned", (long long)w->stats->jobs_returned);
    log_int(&line, "lookups", (long long)w->stats->lookups);
    log_int(&line, "lookup_failures", (long long)w->stats->lookup_failures);
    log_int(&line, "broker_connects", (long long)w->link.connects);
    log_int(&line, "db_connects", (long long)w->stats->db_connects);
    log_int(&line, "in_hand", ledger_count(&w->ledger));
    log_end(&line);
}

/* A message kept for /readyz: cut to fit. */
static void copy_text(char *to, size_t size, const char *text)
{
    struct buf_fixed f;

    buf_fixed_init(&f, to, size);
    buf_fixed_add_str(&f, text);
}

static double wall_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- Per-job data ------------------------------------------------------ */

static const char *field(const struct job_slot *s, enum field f)
{
    return (s->present & (1u << f)) ? s->text.data + s->at[f] : NULL;
}

static size_t field_len(const struct job_slot *s, enum field f)
{
    return (s->present & (1u << f)) ? s->len[f] : 0;
}

static bool field_set(struct job_slot *s, enum field f, const char *value, size_t len)
{
    s->at[f] = (uint32_t)s->text.len;
    s->len[f] = (uint32_t)len;
    s->present |= 1u << f;
    return buf_append(&s->text, value, len) && buf_append(&s->text, "", 1);
}

static bool field_set_str(struct job_slot *s, enum field f, const struct mq_shortstr *value)
{
    return !value->present || field_set(s, f, value->data, value->len);
}

/* Keeps the delivery as it came: the body and the properties. */
static bool slot_store_delivery(struct job_slot *s, const struct mq_message *m)
{
    buf_shrink(&s->text, SLOT_KEEP);
    buf_reset(&s->text);
    s->present = 0;
    s->has_user_id = false;
    s->redelivered = m->redelivered;
    s->delivery_count = m->delivery_count;
    return field_set(s, F_BODY, m->body, m->body_len) &&
           field_set_str(s, F_CONTENT_TYPE, &m->content_type) &&
           field_set_str(s, F_MESSAGE_ID, &m->message_id) &&
           field_set_str(s, F_CORRELATION_ID, &m->correlation_id) &&
           field_set_str(s, F_REPLY_TO, &m->reply_to);
}

/* ---- Broker ------------------------------------------------------------ */

/* The broker connection is gone: every job in hand goes with it, since
 * the broker returns unacked deliveries to the queue by itself.  A lookup
 * in flight finds no entry waiting for it and is dropped. */
static void broker_lost(struct worker *w, const char *why)
{
    link_lost(&w->link, clock_now(), why, ledger_count(&w->ledger));
    w->broker_error[0] = '\0';
    ledger_clear(&w->ledger);
    confirms_reset(&w->confirms, NULL, NULL);
}

/* Where a loss cannot be handled at once (inside the confirm tracker's
 * callback): remembered, and handled by check_broker_error(). */
static void broker_failed(struct worker *w, const char *why)
{
    if (w->broker_error[0] == '\0')
        snprintf(w->broker_error, sizeof w->broker_error, "%s", why);
}

static bool check_broker_error(struct worker *w)
{
    if (w->broker_error[0] == '\0')
        return true;
    broker_lost(w, w->broker_error);
    return false;
}

/* What every new connection needs: the topology, confirm mode, the
 * prefetch.  Consuming starts in update_consuming(). */
static bool setup_broker(struct mq *mq, void *ctx, char *err, size_t errlen)
{
    const struct worker *w = ctx;

    return mq_declare_topology(mq, &w->link.topology, err, errlen) &&
           mq_confirm_select(mq, err, errlen) &&
           mq_qos(mq, (unsigned)w->cfg->prefetch, err, errlen);
}

/* Publishes for the job in slot; its confirm comes back with owner
 * (slot, dead_copy).  false when the broker is lost (already handled). */
static bool publish(struct worker *w, unsigned slot, bool dead_copy, const char *routing_key,
                    const struct mq_publish_props *props, const char *body, size_t len)
{
    char err[512];
    uint64_t seq;

    /* mandatory: an unroutable reply comes back as basic.return, so a
     * missing reply queue is noticed instead of silently dropped. */
    if (!mq_publish(w->link.mq, routing_key, props, body, len, true /* mandatory */, &seq, err,
                    sizeof err)) {
        broker_failed(w, err);
        return false;
    }
    if (!confirms_track(&w->confirms, seq, (uint64_t)slot << 1 | dead_copy)) {
        broker_failed(w, "more publishes in flight than the confirm window");
        return false;
    }
    w->slots[slot].published_at = clock_now();
    return true;
}

/* The original body, with the reason in headers, on the dead queue. */
static bool publish_dead_copy(struct worker *w, unsigned slot, const char *code, const char *detail)
{
    const struct job_slot *s = &w->slots[slot];
    struct mq_publish_props props = {0};

    props.content_type = field(s, F_CONTENT_TYPE);
    props.message_id = field(s, F_MESSAGE_ID);
    props.message_id_len = field_len(s, F_MESSAGE_ID);
    props.correlation_id = field(s, F_CORRELATION_ID);
    props.correlation_id_len = field_len(s, F_CORRELATION_ID);
    props.reply_to = field(s, F_REPLY_TO);
    props.error_code = code;
    props.error_detail = detail;
    return publish(w, slot, true, w->cfg->dead_queue, &props, field(s, F_BODY),
                   field_len(s, F_BODY));
}

/* A permanent failure: an error reply (to the job's reply queue) and the
 * original body, with the reason in headers, on the dead queue.  The job
 * is acked once the broker confirmed the dead copy, so it never loops. */
static void fail_job(struct worker *w, unsigned slot, const char *code, const char *detail)
{
    const struct job_slot *s = &w->slots[slot];
    const char *job_id = field(s, F_JOB_ID);
    struct mq_publish_props props = {0};
    struct log_line line;

    log_begin(&line, LOG_WARN, "job.poison");
    log_str(&line, "job_id", job_id && job_id[0] ? job_id : NULL);
    log_str(&line, "error", code);
    log_str(&line, "detail", detail);
    log_int(&line, "delivery_tag", (long long)ledger_entry(&w->ledger, slot)->tag);
    log_end(&line);

    if (!reply_encode_error(&w->reply, job_id, code, detail)) {
        broker_failed(w, "out of memory encoding an error reply");
        return;
    }
    props.content_type = CONTENT_TYPE_JSON;
    if (job_id && job_id[0] != '\0') {
        props.message_id = job_id;
        props.message_id_len = field_len(s, F_JOB_ID);
    } else {
        props.message_id = field(s, F_MESSAGE_ID);
        props.message_id_len = field_len(s, F_MESSAGE_ID);
    }
    props.correlation_id = field(s, F_CORRELATION);
    props.correlation_id_len = field_len(s, F_CORRELATION);
    ledger_published(&w->ledger, slot, 2, true /* dead copy */);
    if (publish(w, slot, false, field(s, F_REPLY_QUEUE), &props, w->reply.data, w->reply.len))
        publish_dead_copy(w, slot, code, detail);
}

/* Decodes the delivery kept in slot and starts it: poison is answered and
 * dead-lettered at once, a valid job waits for the next lookup. */
static void start_job(struct worker *w, unsigned slot)
{
    struct job_slot *s = &w->slots[slot];
    const char *reply_to, *correlation;
    size_t correlation_len;
    char detail[256];
    enum job_status status;
    size_t job_id_len;

    status = job_decode(field(s, F_BODY), field_len(s, F_BODY), &w->job, detail, sizeof detail);
    /* reply_to and the correlation id may point into s->text itself: room
     * for every decoded field first (each bounded by what it can be), so
     * no append moves the buffer from under them. */
    if (!buf_reserve(&s->text, strlen(w->job.job_id) + strlen(w->job.name) +
                                   field_len(s, F_REPLY_TO) + strlen(w->cfg->reply_queue) +
                                   MQ_SHORTSTR_MAX + 4)) {
        broker_failed(w, "out of memory keeping a job");
        return;
    }
    reply_to = field(s, F_REPLY_TO);
    correlation = field(s, F_CORRELATION_ID);
    correlation_len = field_len(s, F_CORRELATION_ID);
    if (reply_to == NULL || reply_to[0] == '\0')
        reply_to = w->cfg->reply_queue;
    /* A reply into the jobs or dead queue would come back as a job or
     * pass for a dead one; a NUL would cut the name short and send the
     * reply elsewhere.  Refuse them, and answer on the default queue. */
    if (memchr(reply_to, '\0', field_len(s, F_REPLY_TO)) != NULL) {
        if (status == JOB_OK) {
            status = JOB_INVALID_JOB;
            snprintf(detail, sizeof detail, "reply_to must not contain a NUL byte");
        }
        reply_to = w->cfg->reply_queue;
    } else if (strcmp(reply_to, w->cfg->jobs_queue) == 0 ||
               strcmp(reply_to, w->cfg->dead_queue) == 0) {
        if (status == JOB_OK) {
            status = JOB_INVALID_JOB;
            snprintf(detail, sizeof detail, "reply_to must not name the jobs or dead-letter queue");
        }
        reply_to = w->cfg->reply_queue;
    }
    /* The correlation id: the job's property, else its job_id, else its
     * message_id. */
    job_id_len = strlen(w->job.job_id);
    if (correlation == NULL && job_id_len > 0 && job_id_len <= MQ_SHORTSTR_MAX) {
        correlation = w->job.job_id;
        correlation_len = job_id_len;
    } else if (correlation == NULL) {
        correlation = field(s, F_MESSAGE_ID);
        correlation_len = field_len(s, F_MESSAGE_ID);
    }
    s->has_user_id = w->job.has_user_id;
    s->user_id = w->job.user_id;
    if (!field_set(s, F_JOB_ID, w->job.job_id, job_id_len) ||
        (w->job.has_name && !field_set(s, F_NAME, w->job.name, strlen(w->job.name))) ||
        !field_set(s, F_REPLY_QUEUE, reply_to, strlen(reply_to)) ||
        (correlation != NULL && !field_set(s, F_CORRELATION, correlation, correlation_len))) {
        broker_failed(w, "out of memory keeping a job");
        return;
    }
    if (status != JOB_OK) {
        fail_job(w, slot, job_status_code(status), detail);
        return;
    }
    /* Before the job can reach the database.  A redelivered job's exp is
     * forgiven for a while (token.h): it may have been answered ok. */
    if (w->verifier != NULL && token_check_job(w->verifier, &w->job, wall_clock(), s->redelivered,
                                               detail, sizeof detail) != TOKEN_OK) {
        w->stats->jobs_unauthorized++;
        fail_job(w, slot, ERROR_UNAUTHORIZED, detail);
        return;
    }
    fault_crash_check(w->job.job_id);
    fault_stall_check(w->job.job_id);
}

static void on_delivery(struct worker *w, const struct mq_message *m)
{
    /* A redelivered job may be the one that crashed a worker: it is kept
     * as it came, undecoded, until it can run alone.  (The broken
     * fault-injection worker has no such defence.)  The broker's flag
     * alone says so: an x-delivery-count header on a first delivery is a
     * publisher's, and would make every job of a hostile one run alone
     * (quorum queues set the header only on a redelivery). */
    bool suspect = m->redelivered && !fault_ack_early();
    int slot = ledger_add(&w->ledger, m->delivery_tag, suspect);
    char err[256];

    if (slot < 0) {
        /* Cannot happen while the broker honours our prefetch; refuse
         * rather than overwrite a job in hand. */
        log_msg(LOG_ERROR, "delivery.over_prefetch",
                "more deliveries than the ledger holds; returning one");
        if (!mq_reject(w->link.mq, m->delivery_tag, true /* requeue */, err, sizeof err))
            broker_failed(w, err);
        return;
    }
    if (!slot_store_delivery(&w->slots[slot], m)) {
        broker_failed(w, "out of memory keeping a delivery");
        return;
    }
    w->slots[slot].delivered_at = clock_now();
    if (!suspect)
        start_job(w, (unsigned)slot);
}

/* One publish settled (confirms.h callback): the ledger says what its job
 * needs now.  Broker failures here are deferred: the tracker is mid-walk. */
static void on_settled(void *ctx, uint64_t owner, enum confirm_outcome outcome)
{
    struct worker *w = ctx;
    unsigned slot = (unsigned)(owner >> 1);
    bool dead_copy = owner & 1;
    const struct ledger_entry *entry = ledger_entry(&w->ledger, slot);
    const struct job_slot *s = &w->slots[slot];
    char detail[512], err[512];
    struct log_line line;
    double now = clock_now();

    histogram_observe(&w->metrics.confirm_seconds, now - s->published_at);
    switch (ledger_confirmed(&w->ledger, slot, dead_copy, outcome != CONFIRM_ACKED,
                             strcmp(field(s, F_REPLY_QUEUE), w->cfg->reply_queue) == 0,
                             outcome != CONFIRM_ACKED ? now : 0)) {
    case LEDGER_PENDING:
        break;
    case LEDGER_RETRY:
        /* Our own reply queue refused it, maybe for the moment only (a
         * quorum queue electing a new leader): answered again after a
         * wait (ledger.h). */
        w->stats->replies_retried++;
        log_begin(&line, LOG_WARN, "reply.nacked");
        log_str(&line, "job_id", field(s, F_JOB_ID));
        log_str(&line, "reply_to", field(s, F_REPLY_QUEUE));
        log_int(&line, "nacks", entry->nacks);
        log_double(&line, "retry_in", confirms_retry_delay(entry->nacks));
        log_end(&line);
        /* Our own reply queue takes every publish; refusing one twice,
         * the broker speaks for a channel gone stale (in the cluster
         * suite, one opened on a surviving node just after the leader's
         * node died had every publish to the queue nacked for as long as
         * it was open).  A new connection gets a new channel. */
        if (entry->nacks == 2)
            broker_failed(w, "the broker keeps refusing replies to our reply queue");
        break;
    case LEDGER_FINISHED:
        histogram_observe(&w->metrics.job_seconds, now - s->delivered_at);
        if (entry->dead_copy)
            w->stats->jobs_failed++;
        else
            w->stats->jobs_ok++;
        if (log_enabled(LOG_DEBUG)) {
            log_begin(&line, LOG_DEBUG, entry->dead_copy ? "job.dead" : "job.ok");
            log_str(&line, "job_id", field(s, F_JOB_ID));
            log_end(&line);
        }
        break;
    case LEDGER_NEED_DEAD_COPY:
        /* The broker refused the reply (basic.nack) for good: a queue of
         * the job's choosing at once (a full queue with reject-publish,
         * say), ours after its retries.  The broker itself is fine, so
         * no reconnect; the job goes to the dead queue, where it can be
         * replayed once its reply queue takes messages again. */
        w->stats->replies_refused++;
        snprintf(detail, sizeof detail, "the broker refused the reply to queue '%s' (basic.nack)",
                 field(s, F_REPLY_QUEUE));
        log_begin(&line, LOG_WARN, "reply.refused");
        log_str(&line, "job_id", field(s, F_JOB_ID));
        log_str(&line, "reply_to", field(s, F_REPLY_QUEUE));
        log_int(&line, "refused_total", (long long)w->stats->replies_refused);
        log_end(&line);
        ledger_published(&w->ledger, slot, 1, true /* dead copy */);
        publish_dead_copy(w, slot, ERROR_REPLY_REFUSED, detail);
        break;
    case LEDGER_NEED_RETURN:
        /* Even its dead copy was refused: hand the job back rather than
         * lose it; the delivery limit bounds how often it can come back. */
        w->stats->jobs_returned++;
        log_begin(&line, LOG_ERROR, "job.returned");
        log_str(&line, "job_id", field(s, F_JOB_ID));
        log_str(&line, "msg", "the broker refused its dead-letter copy; returned to the queue");
        log_end(&line);
        if (!mq_reject(w->link.mq, entry->tag, true /* requeue */, err, sizeof err))
            broker_failed(w, err);
        ledger_returned(&w->ledger, slot);
        break;
    }
}

static void on_return(struct worker *w, const struct mq_event *ev)
{
    const struct mq_message *m = &ev->message;
    struct log_line line;

    if (strcmp(m->routing_key.data, w->cfg->dead_queue) == 0) {
        /* A dead copy went nowhere: its job must not be acked.  The
         * confirm for it follows this return, so dropping the connection
         * now is in time; reconnecting declares the dead queue again. */
        broker_failed(w, "a dead-letter copy was unroutable (dead-letter queue missing)");
        return;
    }
    w->stats->replies_unroutable++;
    log_begin(&line, LOG_WARN, "reply.unroutable");
    log_str(&line, "job_id", m->message_id.present ? m->message_id.data : NULL);
    log_str(&line, "reply_to", m->routing_key.data);
    log_int(&line, "code", ev->return_code);
    log_str(&line, "reason", ev->return_text.data);
    log_int(&line, "unroutable_total", (long long)w->stats->replies_unroutable);
    log_end(&line);
}

static void on_broker_events(struct worker *w)
{
    char err[512];
    struct mq_event ev;

    for (int n = 0; n < EVENTS_PER_TURN && w->link.mq != NULL; n++) {
        int got = mq_next_event(w->link.mq, &ev, err, sizeof err);
        if (got == 0)
            return;
        if (got < 0) {
            broker_lost(w, err);
            return;
        }
        switch (ev.type) {
        case MQ_EVENT_DELIVERY:
            on_delivery(w, &ev.message);
            break;
        case MQ_EVENT_CONFIRM:
            confirms_settle(&w->confirms, ev.seq, ev.multiple, ev.nacked, on_settled, w);
            break;
        case MQ_EVENT_RETURN:
            on_return(w, &ev);
            break;
        case MQ_EVENT_CANCELLED:
            w->stats->consumer_cancels++;
            log_msg(LOG_WARN, "consumer.cancelled",
                    "the broker cancelled our consumer (jobs queue deleted?)");
            break;
        }
        if (!check_broker_error(w))
            return;
    }
}

/* Acks what the ledger says is finished: one multiple-ack for the run at
 * the head, single acks behind an unfinished job. */
static void ack_finished(struct worker *w)
{
    uint64_t multiple;
    unsigned singles;
    char err[512];

    ledger_take_acks(&w->ledger, &multiple, w->single_acks, &singles);
    if (multiple != 0 && !mq_ack(w->link.mq, multiple, true /* multiple */, err, sizeof err)) {
        broker_lost(w, err);
        return;
    }
    for (unsigned i = 0; i < singles; i++) {
        if (!mq_ack(w->link.mq, w->single_acks[i], false, err, sizeof err)) {
            broker_lost(w, err);
            return;
        }
    }
}

/* Consume only while the database can serve the jobs (jobs taken while
 * it is down would only wait here instead of in another worker), and
 * not while suspects wait or run, so that no innocent job is in hand
 * when one of them crashes us. */
static void update_consuming(struct worker *w)
{
    enum db_state state = db_state(w->db);
    bool db_up = state == DB_READY || state == DB_BUSY;
    bool want = !w->draining && db_up && ledger_wants_deliveries(&w->ledger);
    char err[512];

    if (w->link.mq == NULL)
        return;
    if (want && !mq_is_consuming(w->link.mq)) {
        if (!mq_consume(w->link.mq, w->cfg->jobs_queue, err, sizeof err))
            broker_lost(w, err);
        else
            log_msg(LOG_INFO, "consumer.started", w->cfg->jobs_queue);
    } else if (!want && mq_is_consuming(w->link.mq)) {
        if (!mq_cancel(w->link.mq, err, sizeof err))
            broker_lost(w, err);
        else
            log_msg(LOG_INFO, "consumer.stopped",
                    w->draining ? "shutting down"
                    : !db_up    ? "database unavailable"
                                : "redelivered jobs in hand: processing them one at a time");
    }
}

/* ---- Database ---------------------------------------------------------- */

/* The lookup or the connection failed.  The jobs stay in hand, waiting;
 * nothing is dead-lettered for a database problem -- except a job the
 * ledger finds bad on its own, looked up alone: its rows cannot be read. */
static void db_failed(struct worker *w, const char *why, double now)
{
    enum db_error kind = db_last_error(w->db);
    enum ledger_failure failure = kind == DB_ERROR_DATA    ? LEDGER_FAIL_DATA
                                  : kind == DB_ERROR_OTHER ? LEDGER_FAIL_OTHER
                                                           : LEDGER_FAIL_TRANSIENT;
    int condemned = ledger_lookup_failed(&w->ledger, failure);
    bool connection_lost = db_state(w->db) == DB_DOWN;
    /* A data error says nothing about the server: the isolated jobs are
     * tried again at once. */
    double delay = kind == DB_ERROR_DATA ? 0 : backoff_next(&w->db_backoff);
    struct log_line line;

    w->stats->lookup_failures++;
    copy_text(w->db_error, sizeof w->db_error, why);
    log_begin(&line, LOG_WARN, connection_lost ? "db.lost" : "db.lookup_failed");
    log_str(&line, "error", why);
    log_str(&line, "sqlstate", db_last_sqlstate(w->db)[0] ? db_last_sqlstate(w->db) : NULL);
    log_int(&line, "in_hand", ledger_count(&w->ledger));
    log_double(&line, "retry_in", delay);
    log_end(&line);
    if (connection_lost)
        w->db_retry_at = now + delay;
    else
        w->lookup_retry_at = now + delay;
    if (condemned >= 0 && w->link.mq != NULL) {
        const struct job_slot *s = &w->slots[condemned];
        char detail[256];
        if (s->has_user_id)
            snprintf(detail, sizeof detail,
                     "the preferences of user_id %lld cannot be read (SQLSTATE %s)", s->user_id,
                     db_last_sqlstate(w->db));
        else
            snprintf(detail, sizeof detail, "the greeting templates cannot be read (SQLSTATE %s)",
                     db_last_sqlstate(w->db));
        fail_job(w, (unsigned)condemned, ERROR_BAD_PREFERENCES, detail);
        check_broker_error(w);
    }
}

static void ensure_db(struct worker *w, double now)
{
    char err[512];

    if (db_state(w->db) != DB_DOWN || now < w->db_retry_at)
        return;
    if (!db_connect(w->db, err, sizeof err))
        db_failed(w, err, now);
}

/* A suspect's turn: prove the acks of everything before it arrived, then
 * decode and start it. */
static void run_suspect(struct worker *w, unsigned slot)
{
    const struct job_slot *s = &w->slots[slot];
    struct log_line line;
    char err[512];

    /* Acks written are not acks received: if this job kills us, the
     * kernel resets the connection and drops what it had not sent, and
     * the jobs just finished come back -- again and again, if they keep
     * meeting this job.  A round trip on the channel (the broker handles
     * a channel's frames in order) proves the acks arrived. */
    if (!mq_qos(w->link.mq, (unsigned)w->cfg->prefetch, err, sizeof err)) {
        broker_lost(w, err);
        return;
    }
    log_begin(&line, LOG_INFO, "suspect.run");
    log_strn(&line, "message_id", field(s, F_MESSAGE_ID), (unsigned)field_len(s, F_MESSAGE_ID));
    log_int(&line, "delivery_tag", (long long)ledger_entry(&w->ledger, slot)->tag);
    log_int(&line, "delivery_count", s->delivery_count);
    log_int(&line, "suspects_left", ledger_in_state(&w->ledger, LEDGER_SUSPECT) - 1);
    log_end(&line);
    ledger_suspect_started(&w->ledger, slot);
    start_job(w, slot);
    check_broker_error(w);
}

/* Starts what the ledger says comes next: a lookup, or a suspect. */
static void start_lookup(struct worker *w, double now)
{
    unsigned n, ids = 0;
    enum ledger_action action;
    char err[512];

    if (w->link.mq == NULL || db_state(w->db) != DB_READY || now < w->lookup_retry_at)
        return;
    action = ledger_next(&w->ledger, now, (unsigned)w->cfg->batch_max, backoff_random(&w->random),
                         w->plan, &n);
    if (action == LEDGER_RUN_SUSPECT) {
        run_suspect(w, w->plan[0]);
        /* Its lookup now, not a poll timeout later.  Once: the suspect
         * is running, so this call cannot pick another. */
        if (w->link.mq != NULL && ledger_suspect_running(&w->ledger))
            start_lookup(w, now);
        return;
    }
    if (action != LEDGER_LOOK_UP)
        return;
    for (unsigned i = 0; i < n; i++) {
        const struct job_slot *s = &w->slots[w->plan[i]];
        ledger_lookup_started(&w->ledger, w->plan[i]);
        if (s->has_user_id)
            w->lookup_ids[ids++] = s->user_id;
        if (fault_ack_early()) {
            ledger_mark_acked(&w->ledger, w->plan[i]);
            if (!mq_ack(w->link.mq, ledger_entry(&w->ledger, w->plan[i])->tag, false, err,
                        sizeof err)) {
                broker_lost(w, err);
                return;
            }
        }
    }
    w->stats->lookups++;
    w->lookup_started = now;
    if (!db_lookup(w->db, w->lookup_ids, ids, err, sizeof err))
        db_failed(w, err, now);
}

/* Replies for every job of the finished lookup, published back to back;
 * their confirms are awaited together by the loop. */
static void on_lookup_result(struct worker *w)
{
    size_t n_templates;
    const struct greet_template *templates = db_result_templates(w->db, &n_templates);

    for (unsigned i = 0; i < ledger_count(&w->ledger) && w->broker_error[0] == '\0'; i++) {
        unsigned slot = ledger_slot(&w->ledger, i);
        const struct job_slot *s = &w->slots[slot];
        const struct greet_prefs *prefs;
        const char *language;
        struct mq_publish_props props = {0};

        if (ledger_entry(&w->ledger, slot)->state != LEDGER_LOOKUP)
            continue;
        prefs = s->has_user_id ? db_result_prefs(w->db, s->user_id) : NULL;
        buf_reset(&w->message);
        language = greet_message(&w->message, field(s, F_NAME), prefs, templates, n_templates);
        if (language == NULL ||
            !reply_encode_ok(&w->reply, field(s, F_JOB_ID), w->message.data, language)) {
            broker_failed(w, "out of memory encoding a reply");
            break;
        }
        props.content_type = CONTENT_TYPE_JSON;
        props.message_id = field(s, F_JOB_ID);
        props.message_id_len = field_len(s, F_JOB_ID);
        props.correlation_id = field(s, F_CORRELATION);
        props.correlation_id_len = field_len(s, F_CORRELATION);
        ledger_published(&w->ledger, slot, 1, false);
        publish(w, slot, false, field(s, F_REPLY_QUEUE), &props, w->reply.data, w->reply.len);
    }
    db_result_clear(w->db);
    check_broker_error(w);
}

static void on_db_ready(struct worker *w, double now)
{
    enum db_state before = db_state(w->db);
    char err[512];

    switch (db_step(w->db, err, sizeof err)) {
    case DB_STEP_PENDING:
        break;
    case DB_STEP_READY:
        backoff_reset(&w->db_backoff);
        w->stats->db_connects++;
        log_msg(LOG_INFO, "db.connected", "preferences lookup prepared");
        break;
    case DB_STEP_RESULT:
        backoff_reset(&w->db_backoff);
        histogram_observe(&w->metrics.lookup_seconds, now - w->lookup_started);
        on_lookup_result(w);
        break;
    case DB_STEP_FAILED:
        if (before == DB_CONNECTING) {
            double delay = backoff_next(&w->db_backoff);
            struct log_line line;
            copy_text(w->db_error, sizeof w->db_error, err);
            log_begin(&line, LOG_WARN, "db.connect_failed");
            log_str(&line, "error", err);
            log_double(&line, "retry_in", delay);
            log_end(&line);
            w->db_retry_at = now + delay;
        } else {
            db_failed(w, err, now);
        }
        break;
    }
}

/* A server that stops answering (stopped, partitioned) never errors: give
 * up on it after the statement timeout plus a grace period. */
static void check_db_stall(struct worker *w, double now)
{
    enum db_state state = db_state(w->db);
    double limit = state == DB_CONNECTING ? CONNECT_TIMEOUT : w->cfg->db_timeout + DB_GRACE;

    if ((state == DB_CONNECTING || state == DB_BUSY) && db_busy_for(w->db, now) > limit) {
        db_disconnect(w->db);
        db_failed(w, state == DB_CONNECTING ? "connect timed out" : "no answer from the database",
                  now);
    }
}

/* ---- What /metrics and /readyz show ------------------------------------- */

/* The loop's state as struct worker_metrics: counted and derived where it
 * lives (stats, ledger, link, db), copied here only to be published. */
static void fill_metrics(struct worker *w)
{
    struct worker_metrics *m = &w->metrics;
    enum db_state state = db_state(w->db);

    m->stats = *w->stats;
    m->broker_connects = w->link.connects;
    m->in_flight = ledger_count(&w->ledger);
    m->suspects = ledger_suspects(&w->ledger);
    m->broker_up = w->link.mq != NULL;
    m->db_up = state == DB_READY || state == DB_BUSY;
    m->consuming = w->link.mq != NULL && mq_is_consuming(w->link.mq);
    m->draining = w->draining;
    copy_text(m->broker_error, sizeof m->broker_error, w->link.error);
    copy_text(m->db_error, sizeof m->db_error, w->db_error);
}

static void publish_status(struct worker *w, double now)
{
    enum db_state db = db_state(w->db);
    /* What readiness turns on, as bits: a change is shown at once. */
    unsigned state = (w->link.mq != NULL) | (db == DB_READY || db == DB_BUSY) << 1 |
                     (w->link.mq != NULL && mq_is_consuming(w->link.mq)) << 2 | w->draining << 3;

    if (!status_due(&w->status, now, state))
        return;
    fill_metrics(w);
    status_publish(&w->status, &w->metrics, now, state);
}

/* ---- The loop ---------------------------------------------------------- */

static int poll_timeout(const struct worker *w, double now)
{
    double deadline = now + POLL_CAP_MS / 1000.0, retry;

    if (w->cfg->heartbeat > 0 && now + w->cfg->heartbeat / 4 < deadline)
        deadline = now + w->cfg->heartbeat / 4;
    if (!w->draining && w->link.mq == NULL && w->link.retry_at < deadline)
        deadline = w->link.retry_at;
    if (db_state(w->db) == DB_DOWN && w->db_retry_at < deadline)
        deadline = w->db_retry_at;
    if (w->lookup_retry_at > now && w->lookup_retry_at < deadline)
        deadline = w->lookup_retry_at;
    retry = ledger_next_retry(&w->ledger, now);
    if (retry > 0 && retry < deadline)
        deadline = retry;
    if (w->draining && w->drain_deadline < deadline)
        deadline = w->drain_deadline;
    if (w->next_stats > 0 && w->next_stats < deadline)
        deadline = w->next_stats;
    if (w->status.pending && now + STATUS_RETRY < deadline)
        deadline = now + STATUS_RETRY;
    if (w->link.mq != NULL && mq_has_buffered(w->link.mq))
        return 0;
    return clock_ms_until(deadline, POLL_CAP_MS);
}

static void drain_wake_pipe(int fd)
{
    char bytes[64];

    while (read(fd, bytes, sizeof bytes) > 0)
        ;
}

/* /healthz fails when the loop has not turned for this long.  The longest
 * a healthy loop blocks is a connect round: for each broker URL, the TCP
 * connect, the handshake and the set-up may each take LINK_TIMEOUT. */
static double stall_limit(const struct worker *w)
{
    return 3 * LINK_TIMEOUT * (w->link.urls_ok ? w->link.urls.n : 1) + POLL_CAP_MS / 1000.0;
}

static bool init(struct worker *w, const struct config *cfg, const struct token_verifier *verifier,
                 struct worker_stats *stats)
{
    /* Twice the prefetch: entries acked one by one stay in the ledger
     * until the head passes them, while the broker fills the window
     * again.  A job has at most two publishes in flight, and settled
     * ones wait behind unsettled ones in the confirm window. */
    unsigned cap = 2 * (unsigned)cfg->prefetch;

    memset(w, 0, sizeof *w);
    w->cfg = cfg;
    w->verifier = verifier;
    w->stats = stats;
    link_init(&w->link, cfg, "greet-worker", setup_broker, w);

    w->slots = calloc(cap, sizeof *w->slots);
    w->plan = calloc((size_t)cfg->batch_max, sizeof *w->plan);
    w->lookup_ids = calloc((size_t)cfg->batch_max, sizeof *w->lookup_ids);
    w->single_acks = calloc(cap, sizeof *w->single_acks);
    w->db = db_new(cfg->database_url, "greet-worker", cfg->db_timeout);
    backoff_init(&w->db_backoff, RECONNECT_BASE, RECONNECT_CAP, (uint64_t)getpid() * 40503u + 1);
    backoff_init(&w->random, 1, 1, (uint64_t)getpid() ^ (uint64_t)(clock_now() * 1e6));
    if (cfg->stats_interval > 0)
        w->next_stats = clock_now() + cfg->stats_interval;
    worker_metrics_init(&w->metrics, wall_clock());
    fault_init();
    return ledger_init(&w->ledger, cap) && confirms_init(&w->confirms, 4 * (size_t)cap) &&
           w->slots && w->plan && w->lookup_ids && w->single_acks && w->db;
}

static void teardown(struct worker *w)
{
    status_stop(&w->status);
    for (unsigned i = 0; w->slots && i < w->ledger.cap; i++)
        buf_free(&w->slots[i].text);
    db_free(w->db);
    ledger_free(&w->ledger);
    confirms_free(&w->confirms);
    free(w->slots);
    free(w->plan);
    free(w->lookup_ids);
    free(w->single_acks);
    buf_free(&w->message);
    buf_free(&w->reply);
}

int worker_run(const struct config *cfg, const struct token_verifier *verifier,
               volatile sig_atomic_t *stop, int wake_fd, struct worker_stats *stats)
{
    struct worker w;
    struct pollfd fds[3];
    int status = 0;
    char err[512];

    if (!init(&w, cfg, verifier, stats)) {
        log_msg(LOG_ERROR, "worker.start_failed", "out of memory");
        teardown(&w);
        return 1;
    }
    if (!status_start(&w.status, cfg->http_addr, fault_stall_limit(stall_limit(&w)), err,
                      sizeof err)) {
        struct log_line line;
        log_begin(&line, LOG_ERROR, "worker.start_failed");
        log_str(&line, "error", err);
        log_str(&line, "setting", "GREET_HTTP_ADDR");
        log_end(&line);
        teardown(&w);
        return 1;
    }
    if (cfg->http_addr[0] != '\0') {
        struct log_line line;
        log_begin(&line, LOG_INFO, "http.listening");
        log_str(&line, "addr", cfg->http_addr);
        log_str(&line, "paths", "/metrics /healthz /readyz");
        log_end(&line);
    }

    for (;;) {
        double now = clock_now();
        int n_fds = 0, mq_index = -1, db_index = -1;

        if (*stop && !w.draining) {
            struct log_line line;
            w.draining = true;
            w.drain_deadline = now + cfg->shutdown_timeout;
            log_begin(&line, LOG_INFO, "shutdown.start");
            log_int(&line, "in_hand", ledger_count(&w.ledger));
            log_double(&line, "deadline_s", cfg->shutdown_timeout);
            log_end(&line);
        }
        if (w.draining && ledger_count(&w.ledger) == 0 &&
            (w.link.mq == NULL || mq_cancel_settled(w.link.mq)))
            break;
        if (w.draining && now >= w.drain_deadline)
            break;

        if (!w.draining)
            link_ensure(&w.link, now, false);
        ensure_db(&w, now);
        update_consuming(&w);
        start_lookup(&w, now);
        /* Before the wait, so that what this turn changed is shown while
         * the loop sleeps. */
        publish_status(&w, now);

        fds[n_fds].fd = wake_fd;
        fds[n_fds++].events = POLLIN;
        if (w.link.mq != NULL) {
            mq_index = n_fds;
            fds[n_fds].fd = mq_fd(w.link.mq);
            fds[n_fds++].events = POLLIN;
        }
        if (db_state(w.db) != DB_DOWN && db_fd(w.db) >= 0) {
            db_index = n_fds;
            fds[n_fds].fd = db_fd(w.db);
            fds[n_fds++].events = db_poll_events(w.db);
        }
        for (int i = 0; i < n_fds; i++)
            fds[i].revents = 0;
        if (poll(fds, (nfds_t)n_fds, poll_timeout(&w, now)) < 0 && errno != EINTR) {
            struct log_line line;
            log_begin(&line, LOG_ERROR, "worker.poll_failed");
            log_str(&line, "error", strerror(errno));
            log_end(&line);
            status = 1;
            break;
        }
        now = clock_now();

        if (fds[0].revents)
            drain_wake_pipe(wake_fd);
        if (mq_index >= 0 && w.link.mq != NULL && fds[mq_index].revents)
            mq_saw_input(w.link.mq, now);
        if (w.link.mq != NULL)
            on_broker_events(&w);
        if (db_index >= 0 && fds[db_index].revents)
            on_db_ready(&w, now);
        check_db_stall(&w, now);
        if (w.link.mq != NULL && !mq_heartbeat_ok(w.link.mq, now))
            broker_lost(&w, "missed broker heartbeats");
        if (w.link.mq != NULL) {
            ack_finished(&w);
            if (w.link.mq != NULL)
                mq_release_buffers(w.link.mq);
        }
        if (w.next_stats > 0 && now >= w.next_stats) {
            log_stats(&w, "worker.stats");
            w.next_stats = now + cfg->stats_interval;
        }
    }

    if (ledger_count(&w.ledger) > 0) {
        struct log_line line;
        stats->returned_at_shutdown = ledger_count(&w.ledger);
        log_begin(&line, LOG_WARN, "shutdown.deadline");
        log_int(&line, "returned", ledger_count(&w.ledger));
        log_str(&line, "msg", "jobs still in hand go back to the broker");
        log_end(&line);
    }
    /* Closing the channel hands anything unacked back to the broker. */
    link_close(&w.link);
    log_stats(&w, "worker.stopped");
    teardown(&w);
    return status;
}
