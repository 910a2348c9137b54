/* worker.c - the worker's event loop; see worker.h. */
#include "worker.h"

#include "backoff.h"
#include "buf.h"
#include "clock.h"
#include "db.h"
#include "greet.h"
#include "job.h"
#include "log.h"
#include "mq.h"
#include "reply.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CONTENT_TYPE_JSON "application/json"
/* Reconnect delays: from 100 ms, doubling, capped at 30 s (backoff.h). */
#define BACKOFF_BASE 0.1
#define BACKOFF_CAP  30.0
/* How long a connect may take, and how long past its statement timeout a
 * lookup may go before the server is taken for stalled or gone. */
#define CONNECT_TIMEOUT 10.0
#define DB_GRACE        2.0
#define POLL_CAP_MS     1000
/* Broker events handled before the loop looks at anything else. */
#define EVENTS_PER_TURN 4096

enum slot_state {
    SLOT_FREE,
    SLOT_SUSPECT,     /* redelivered: held undecoded until its turn, alone */
    SLOT_WAIT_LOOKUP, /* valid job, preferences not read yet */
    SLOT_IN_LOOKUP,   /* part of the lookup in flight */
    SLOT_WAIT_CONFIRM,
    SLOT_DONE,  /* everything confirmed: ready to ack */
    SLOT_ACKED, /* acked on its own, behind a slot still in work */
};

/* A delivery in hand.  Slots live in a ring in arrival (delivery tag)
 * order, so the acknowledgeable prefix is found from the head. */
struct slot {
    enum slot_state state;
    bool poison;
    bool acked_early; /* fault injection only */
    bool has_user_id, has_name, has_correlation;
    unsigned confirms_pending;
    uint64_t tag;
    long long delivery_count;
    long long user_id;
    /* What the reply needs, NUL-terminated one after another: the job_id
     * ("" when none could be read), the name, the reply queue (resolved,
     * never empty), the correlation id (binary-safe, correlation_len
     * bytes).  A few dozen bytes where fixed arrays took 1.9 KB a slot. */
    struct buf text;
    unsigned short name_at, reply_to_at, correlation_at;
    unsigned char correlation_len;
    /* SLOT_SUSPECT: the delivery as it came, owned by the slot. */
    struct mq_message *held;
    struct buf held_body;
};

/* A publish waiting for its confirm, and the slot it belongs to. */
struct publish {
    uint64_t seq;
    unsigned slot;
    bool confirmed;
};

struct worker {
    const struct config *cfg;
    struct worker_stats *stats;
    struct mq_settings mq_settings;
    struct mq_topology topology;
    struct mq *mq;
    struct db *db;

    struct slot *slots;
    unsigned cap, head, count;
    struct publish *publishes;
    unsigned pub_cap, pub_head, pub_count;
    long long *lookup_ids;
    unsigned in_lookup;
    unsigned suspects;     /* slots in SLOT_SUSPECT */
    unsigned unacked_done; /* slots in SLOT_DONE */
    bool suspect_running;  /* a suspect is being processed, alone */
    struct backoff random; /* picks among equally suspect jobs */
    /* Fault injection (test builds only): the job that crashes us, and
     * the deliberately broken mode that acks on arrival. */
    const char *fault_crash_job;
    bool fault_ack_early;

    struct job job; /* the delivery being decoded */
    struct buf message, reply;
    struct backoff mq_backoff, db_backoff;
    double mq_retry_at, db_retry_at, lookup_retry_at;
    bool draining;
    double drain_deadline;
    double next_stats;
};

static void log_error_event(enum log_level level, const char *event, const char *error)
{
    struct log_line line;

    log_begin(&line, level, event);
    log_str(&line, "error", error);
    log_end(&line);
}

static void log_stats(const struct worker *w, const char *event)
{
    struct log_line line;

    log_begin(&line, LOG_INFO, event);
    log_int(&line, "jobs_ok", (long long)w->stats->jobs_ok);
    log_int(&line, "jobs_failed", (long long)w->stats->jobs_failed);
    log_int(&line, "replies_unroutable", (long long)w->stats->replies_unroutable);
    log_int(&line, "lookups", (long long)w->stats->lookups);
    log_int(&line, "lookup_failures", (long long)w->stats->lookup_failures);
    log_int(&line, "broker_connects", (long long)w->stats->broker_connects);
    log_int(&line, "db_connects", (long long)w->stats->db_connects);
    log_int(&line, "in_hand", w->count);
    log_end(&line);
}

static struct slot *slot_at(struct worker *w, unsigned nth)
{
    return &w->slots[(w->head + nth) % w->cap];
}

/* ---- Broker ---------------------------------------------------------- */

/* The broker connection is gone: every job in hand goes with it, since
 * the broker returns unacked deliveries to the queue by itself. */
static void broker_lost(struct worker *w, const char *why)
{
    struct log_line line;
    double delay = backoff_next(&w->mq_backoff);

    log_begin(&line, LOG_WARN, "broker.lost");
    log_str(&line, "error", why);
    log_int(&line, "in_hand", w->count);
    log_double(&line, "retry_in", delay);
    log_end(&line);
    mq_abandon(w->mq);
    w->mq = NULL;
    for (unsigned i = 0; i < w->cap; i++) {
        free(w->slots[i].held);
        w->slots[i].held = NULL;
        buf_shrink(&w->slots[i].held_body, 0);
        w->slots[i].state = SLOT_FREE;
    }
    w->head = w->count = 0;
    w->suspects = w->unacked_done = 0;
    w->suspect_running = false;
    w->pub_head = w->pub_count = 0;
    /* A lookup in flight finds no slot waiting for it and is dropped. */
    w->in_lookup = 0;
    w->mq_retry_at = clock_now() + delay;
}

static void ensure_broker(struct worker *w, double now)
{
    char err[512];

    if (w->mq != NULL || now < w->mq_retry_at || w->draining)
        return;
    w->mq = mq_connect(&w->mq_settings, err, sizeof err);
    if (w->mq == NULL || !mq_declare_topology(w->mq, &w->topology, err, sizeof err) ||
        !mq_confirm_select(w->mq, err, sizeof err) ||
        !mq_qos(w->mq, (unsigned)w->cfg->prefetch, err, sizeof err)) {
        double delay = backoff_next(&w->mq_backoff);
        struct log_line line;
        log_begin(&line, LOG_WARN, "broker.connect_failed");
        log_str(&line, "error", err);
        log_double(&line, "retry_in", delay);
        log_end(&line);
        mq_abandon(w->mq);
        w->mq = NULL;
        w->mq_retry_at = now + delay;
        return;
    }
    backoff_reset(&w->mq_backoff);
    w->stats->broker_connects++;
    {
        struct log_line line;
        char url[256];
        mq_describe(w->mq, url, sizeof url);
        log_begin(&line, LOG_INFO, "broker.connected");
        log_str(&line, "url", url);
        log_str(&line, "queue", w->cfg->jobs_queue);
        log_int(&line, "prefetch", w->cfg->prefetch);
        log_end(&line);
    }
}

/* Records a publish for slot so its confirm can find it. */
static void track_publish(struct worker *w, unsigned slot_index, uint64_t seq)
{
    struct publish *p = &w->publishes[(w->pub_head + w->pub_count) % w->pub_cap];

    p->seq = seq;
    p->slot = slot_index;
    p->confirmed = false;
    w->pub_count++;
    w->slots[slot_index].confirms_pending++;
}

static bool publish_for(struct worker *w, unsigned slot_index, const char *routing_key,
                        const struct mq_publish_props *props, const char *body, size_t len)
{
    char err[512];
    uint64_t seq;

    /* mandatory: an unroutable reply comes back as basic.return, so a
     * missing reply queue is noticed instead of silently dropped. */
    if (!mq_publish(w->mq, routing_key, props, body, len, true /* mandatory */, &seq, err,
                    sizeof err)) {
        broker_lost(w, err);
        return false;
    }
    track_publish(w, slot_index, seq);
    return true;
}

static const char *slot_job_id(const struct slot *slot)
{
    return slot->text.data;
}

static const char *slot_name(const struct slot *slot)
{
    return slot->has_name ? slot->text.data + slot->name_at : NULL;
}

static const char *slot_reply_to(const struct slot *slot)
{
    return slot->text.data + slot->reply_to_at;
}

static bool append_field(struct buf *text, unsigned short *at, const char *value, size_t len)
{
    *at = (unsigned short)text->len;
    return buf_append(text, value, len) && buf_append(text, "", 1);
}

/* Keeps what the reply needs.  The correlation id is the job's
 * correlation_id property, else its job_id, else its message_id. */
static bool slot_store(struct slot *slot, const struct job *job, const struct mq_message *m,
                       const char *reply_to)
{
    unsigned short job_id_at;
    const char *correlation = NULL;
    size_t correlation_len = 0;

    if (m->correlation_id.present) {
        correlation = m->correlation_id.data;
        correlation_len = m->correlation_id.len;
    } else if (job->job_id[0] != '\0' && strlen(job->job_id) <= MQ_SHORTSTR_MAX) {
        correlation = job->job_id;
        correlation_len = strlen(job->job_id);
    } else if (m->message_id.present) {
        correlation = m->message_id.data;
        correlation_len = m->message_id.len;
    }
    buf_reset(&slot->text);
    slot->has_user_id = job->has_user_id;
    slot->user_id = job->user_id;
    slot->has_name = job->has_name;
    slot->has_correlation = correlation != NULL;
    slot->correlation_len = (unsigned char)correlation_len;
    return append_field(&slot->text, &job_id_at, job->job_id, strlen(job->job_id)) &&
           append_field(&slot->text, &slot->name_at, job->name,
                        job->has_name ? strlen(job->name) : 0) &&
           append_field(&slot->text, &slot->reply_to_at, reply_to, strlen(reply_to)) &&
           append_field(&slot->text, &slot->correlation_at, correlation ? correlation : "",
                        correlation_len);
}

/* A permanent failure: an error reply (to the job's reply queue) and the
 * original body, with the reason in headers, on the dead queue.  The job
 * is acked once the broker confirmed both, so it never loops. */
static void publish_poison(struct worker *w, unsigned slot_index, const struct mq_message *m,
                           enum job_status status, const char *detail)
{
    struct slot *slot = &w->slots[slot_index];
    const char *code = job_status_code(status);
    struct mq_publish_props reply_props = {0}, dead_props = {0};
    struct log_line line;

    slot->poison = true;
    slot->state = SLOT_WAIT_CONFIRM;
    log_begin(&line, LOG_WARN, "job.poison");
    log_str(&line, "job_id", slot_job_id(slot)[0] ? slot_job_id(slot) : NULL);
    log_str(&line, "error", code);
    log_str(&line, "detail", detail);
    log_int(&line, "delivery_tag", (long long)slot->tag);
    log_end(&line);

    if (!reply_encode_error(&w->reply, slot_job_id(slot), code, detail)) {
        broker_lost(w, "out of memory encoding an error reply");
        return;
    }
    reply_props.content_type = CONTENT_TYPE_JSON;
    if (slot_job_id(slot)[0] != '\0') {
        reply_props.message_id = slot_job_id(slot);
        reply_props.message_id_len = strlen(slot_job_id(slot));
    } else if (m->message_id.present) {
        reply_props.message_id = m->message_id.data;
        reply_props.message_id_len = m->message_id.len;
    }
    if (slot->has_correlation) {
        reply_props.correlation_id = slot->text.data + slot->correlation_at;
        reply_props.correlation_id_len = slot->correlation_len;
    }
    if (!publish_for(w, slot_index, slot_reply_to(slot), &reply_props, w->reply.data, w->reply.len))
        return;

    /* The dead copy keeps the job's own properties. */
    dead_props.content_type = m->content_type.present ? m->content_type.data : NULL;
    if (m->message_id.present) {
        dead_props.message_id = m->message_id.data;
        dead_props.message_id_len = m->message_id.len;
    }
    if (m->correlation_id.present) {
        dead_props.correlation_id = m->correlation_id.data;
        dead_props.correlation_id_len = m->correlation_id.len;
    }
    dead_props.reply_to = m->reply_to.present ? m->reply_to.data : NULL;
    dead_props.error_code = code;
    dead_props.error_detail = detail;
    publish_for(w, slot_index, w->cfg->dead_queue, &dead_props, m->body, m->body_len);
}

#ifdef GREET_FAULT_INJECTION
/* Test builds only (make FAULT_INJECTION=1): die on the chosen job, the
 * way a crashing bug would. */
static void fault_check_crash(const struct worker *w, const char *job_id)
{
    if (w->fault_crash_job != NULL && strcmp(w->fault_crash_job, job_id) == 0) {
        log_msg(LOG_ERROR, "fault.crash", job_id);
        abort();
    }
}
#else
static void fault_check_crash(const struct worker *w, const char *job_id)
{
    (void)w;
    (void)job_id;
}
#endif

/* Decodes a delivery in slot_index and starts it: poison is answered and
 * dead-lettered at once, a valid job waits for the next lookup. */
static void process_delivery(struct worker *w, unsigned slot_index, const struct mq_message *m)
{
    struct slot *slot = &w->slots[slot_index];
    const char *reply_to = w->cfg->reply_queue;
    char detail[256];
    enum job_status status;

    status = job_decode(m->body, m->body_len, &w->job, detail, sizeof detail);
    if (m->reply_to.present && m->reply_to.len > 0)
        reply_to = m->reply_to.data;
    /* A reply into the jobs or dead queue would come back as a job or
     * pass for a dead one: refuse it, and answer on the default queue. */
    if (strcmp(reply_to, w->cfg->jobs_queue) == 0 || strcmp(reply_to, w->cfg->dead_queue) == 0) {
        if (status == JOB_OK) {
            status = JOB_INVALID_JOB;
            snprintf(detail, sizeof detail, "reply_to must not name the jobs or dead-letter queue");
        }
        reply_to = w->cfg->reply_queue;
    }
    if (!slot_store(slot, &w->job, m, reply_to)) {
        broker_lost(w, "out of memory keeping a job");
        return;
    }

    if (status != JOB_OK) {
        publish_poison(w, slot_index, m, status, detail);
        return;
    }
    fault_check_crash(w, slot_job_id(slot));
    slot->state = SLOT_WAIT_LOOKUP;
}

/* A redelivered job may be the one that crashed a worker: keep it as it
 * came, undecoded, until it can be processed alone (see next_suspect). */
static bool hold_suspect(struct slot *slot, const struct mq_message *m)
{
    slot->held = malloc(sizeof *slot->held);
    buf_reset(&slot->held_body);
    if (slot->held == NULL || !buf_append(&slot->held_body, m->body, m->body_len)) {
        free(slot->held);
        slot->held = NULL;
        return false;
    }
    *slot->held = *m;
    slot->held->body = slot->held_body.data;
    slot->state = SLOT_SUSPECT;
    return true;
}

static void on_delivery(struct worker *w, const struct mq_message *m)
{
    struct slot *slot;
    unsigned slot_index;
    char err[256];

    if (w->count == w->cap) {
        /* Cannot happen while the broker honours our prefetch; refuse
         * rather than overwrite a job in hand. */
        log_msg(LOG_ERROR, "delivery.over_prefetch",
                "more deliveries than the prefetch window; returning one");
        if (!mq_reject(w->mq, m->delivery_tag, true /* requeue */, err, sizeof err))
            broker_lost(w, err);
        return;
    }
    slot_index = (w->head + w->count) % w->cap;
    slot = &w->slots[slot_index];
    w->count++;
    slot->tag = m->delivery_tag;
    slot->delivery_count = m->delivery_count;
    slot->poison = false;
    slot->acked_early = false;
    slot->confirms_pending = 0;

    if (!w->fault_ack_early && (m->redelivered || m->delivery_count > 0)) {
        if (hold_suspect(slot, m)) {
            w->suspects++;
            return;
        }
        log_msg(LOG_WARN, "suspect.not_held",
                "out of memory; processing a redelivered job at once");
    }
    process_delivery(w, slot_index, m);
}

static void slot_confirmed(struct worker *w, struct slot *slot)
{
    if (slot->state != SLOT_WAIT_CONFIRM || --slot->confirms_pending > 0)
        return;
    slot->state = SLOT_DONE;
    w->unacked_done++;
    if (slot->poison)
        w->stats->jobs_failed++;
    else
        w->stats->jobs_ok++;
    if (log_enabled(LOG_DEBUG)) {
        struct log_line line;
        log_begin(&line, LOG_DEBUG, slot->poison ? "job.dead" : "job.ok");
        log_str(&line, "job_id", slot_job_id(slot));
        log_end(&line);
    }
}

static void on_confirm(struct worker *w, uint64_t seq, bool multiple, bool nacked)
{
    if (nacked) {
        /* The broker could not store a reply or dead copy.  Starting over
         * lets the broker redeliver the jobs; nothing is acked for them. */
        broker_lost(w, "the broker refused to store a message (basic.nack)");
        return;
    }
    for (unsigned i = 0; i < w->pub_count; i++) {
        struct publish *p = &w->publishes[(w->pub_head + i) % w->pub_cap];
        if (p->seq > seq)
            break;
        if (p->confirmed || (!multiple && p->seq != seq))
            continue;
        p->confirmed = true;
        slot_confirmed(w, &w->slots[p->slot]);
    }
    while (w->pub_count > 0 && w->publishes[w->pub_head].confirmed) {
        w->pub_head = (w->pub_head + 1) % w->pub_cap;
        w->pub_count--;
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
        broker_lost(w, "a dead-letter copy was unroutable (dead-letter queue missing)");
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

    for (int n = 0; n < EVENTS_PER_TURN && w->mq != NULL; n++) {
        int got = mq_next_event(w->mq, &ev, err, sizeof err);
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
            on_confirm(w, ev.seq, ev.multiple, ev.nacked);
            break;
        case MQ_EVENT_RETURN:
            on_return(w, &ev);
            break;
        case MQ_EVENT_CANCELLED:
            log_msg(LOG_WARN, "consumer.cancelled",
                    "the broker cancelled our consumer (jobs queue deleted?)");
            break;
        }
    }
}

static void release_slot(struct worker *w, struct slot *slot)
{
    if (slot->state == SLOT_DONE)
        w->unacked_done--;
    slot->state = SLOT_FREE;
}

/* Acks finished jobs: the longest finished run at the head of the ring
 * with one multiple-ack; finished jobs behind a slot still in work (a
 * suspect, a straggling confirm) one by one, so that a crash while that
 * slot is processed does not send them back. */
static void ack_finished(struct worker *w)
{
    uint64_t last = 0;
    char err[512];

    while (w->count > 0 &&
           (slot_at(w, 0)->state == SLOT_DONE || slot_at(w, 0)->state == SLOT_ACKED)) {
        struct slot *slot = slot_at(w, 0);
        if (slot->state == SLOT_DONE && !slot->acked_early)
            last = slot->tag;
        release_slot(w, slot);
        w->head = (w->head + 1) % w->cap;
        w->count--;
    }
    if (last != 0 && !mq_ack(w->mq, last, true /* multiple */, err, sizeof err)) {
        broker_lost(w, err);
        return;
    }
    for (unsigned i = 0; i < w->count && w->unacked_done > 0; i++) {
        struct slot *slot = slot_at(w, i);
        if (slot->state != SLOT_DONE)
            continue;
        if (!slot->acked_early && !mq_ack(w->mq, slot->tag, false, err, sizeof err)) {
            broker_lost(w, err);
            return;
        }
        w->unacked_done--;
        slot->state = SLOT_ACKED;
    }
}

/* Consume only while the database can serve the jobs: jobs taken while
 * it is down would only wait in this worker instead of another. */
static void update_consuming(struct worker *w)
{
    enum db_state state = db_state(w->db);
    /* Suspects in hand: take no new jobs until they are through, so no
     * innocent job is in hand when one of them crashes us. */
    bool want = !w->draining && (state == DB_READY || state == DB_BUSY) && w->suspects == 0;
    char err[512];

    if (w->mq == NULL)
        return;
    if (want && !mq_is_consuming(w->mq)) {
        if (!mq_consume(w->mq, w->cfg->jobs_queue, err, sizeof err))
            broker_lost(w, err);
        else
            log_msg(LOG_INFO, "consumer.started", w->cfg->jobs_queue);
    } else if (!want && mq_is_consuming(w->mq)) {
        if (!mq_cancel(w->mq, err, sizeof err))
            broker_lost(w, err);
        else
            log_msg(LOG_INFO, "consumer.stopped",
                    w->draining       ? "shutting down"
                    : w->suspects > 0 ? "redelivered jobs in hand: processing them one at a time"
                                      : "database unavailable");
    }
}

/* ---- Database -------------------------------------------------------- */

static void return_lookup_jobs(struct worker *w)
{
    for (unsigned i = 0; i < w->count; i++)
        if (slot_at(w, i)->state == SLOT_IN_LOOKUP)
            slot_at(w, i)->state = SLOT_WAIT_LOOKUP;
    w->in_lookup = 0;
}

/* The lookup or the connection failed: the jobs stay in hand, waiting;
 * nothing is dead-lettered or rejected for a database problem. */
static void db_failed(struct worker *w, const char *why, double now)
{
    double delay = backoff_next(&w->db_backoff);
    struct log_line line;
    bool connection_lost = db_state(w->db) == DB_DOWN;

    return_lookup_jobs(w);
    w->stats->lookup_failures++;
    log_begin(&line, LOG_WARN, connection_lost ? "db.lost" : "db.lookup_failed");
    log_str(&line, "error", why);
    log_int(&line, "in_hand", w->count);
    log_double(&line, "retry_in", delay);
    log_end(&line);
    if (connection_lost)
        w->db_retry_at = now + delay;
    else
        w->lookup_retry_at = now + delay;
}

static void ensure_db(struct worker *w, double now)
{
    char err[512];

    if (db_state(w->db) != DB_DOWN || now < w->db_retry_at)
        return;
    if (!db_connect(w->db, err, sizeof err))
        db_failed(w, err, now);
}

/* The next suspect to run alone, or -1: none, or other work still in
 * hand.  Drawn at random among the suspects held: each crash sends back
 * the crashing job with whatever suspects were still waiting, and a
 * random order lets every innocent one go first with even odds or better
 * each round, so none stays stuck behind the crasher until the delivery
 * limit.  (Lowest delivery count first was tried: counts also grow with
 * returns the crasher does not share, and the fault suite caught an
 * innocent counted ahead of the crasher, run after it every time.) */
static int next_suspect(struct worker *w)
{
    int chosen = -1;
    unsigned seen = 0;

    for (unsigned i = 0; i < w->count; i++) {
        struct slot *slot = slot_at(w, i);
        if (slot->state == SLOT_ACKED)
            continue;
        if (slot->state != SLOT_SUSPECT)
            return -1; /* finish (and ack) everything else first */
        /* Reservoir sampling: the i-th suspect replaces the pick with
         * probability 1/i, which leaves each equally likely. */
        if (backoff_random(&w->random) * ++seen < 1.0)
            chosen = (int)((w->head + i) % w->cap);
    }
    return chosen;
}

static void run_suspect(struct worker *w, unsigned index)
{
    struct slot *slot = &w->slots[index];
    struct mq_message *m = slot->held;
    struct log_line line;
    char err[512];

    /* Acks written are not acks received: if this job kills us, the
     * kernel resets the connection and drops what it had not sent, and
     * the jobs just finished come back -- again and again, if they keep
     * meeting this job.  A round trip on the channel (the broker handles
     * a channel's frames in order) proves the acks arrived. */
    if (!mq_qos(w->mq, (unsigned)w->cfg->prefetch, err, sizeof err)) {
        broker_lost(w, err);
        return;
    }

    log_begin(&line, LOG_INFO, "suspect.run");
    log_strn(&line, "message_id", m->message_id.present ? m->message_id.data : NULL,
             m->message_id.len);
    log_int(&line, "delivery_tag", (long long)slot->tag);
    log_int(&line, "delivery_count", slot->delivery_count);
    log_int(&line, "suspects_left", w->suspects - 1);
    log_end(&line);
    w->suspects--;
    w->suspect_running = true;
    slot->held = NULL;
    process_delivery(w, index, m);
    free(m);
    buf_shrink(&w->slots[index].held_body, 1 << 16);
}

/* The deliberately broken mode (fault-injection builds only): ack a job
 * as its lookup starts, long before its reply is confirmed -- the bug the
 * fault suite must catch. */
static bool fault_ack_now(struct worker *w, struct slot *slot)
{
    char err[512];

    if (!w->fault_ack_early)
        return true;
    slot->acked_early = true;
    if (mq_ack(w->mq, slot->tag, false, err, sizeof err))
        return true;
    broker_lost(w, err);
    return false;
}

static void start_lookup(struct worker *w, double now)
{
    unsigned batch = 0, ids = 0;
    char err[512];

    if (db_state(w->db) != DB_READY || w->in_lookup > 0 || now < w->lookup_retry_at)
        return;
    if (w->suspect_running) {
        /* Its own lookup (if it needs one) goes alone. */
        for (unsigned i = 0; i < w->count; i++) {
            struct slot *slot = slot_at(w, i);
            if (slot->state == SLOT_WAIT_CONFIRM || slot->state == SLOT_IN_LOOKUP)
                return;
            if (slot->state == SLOT_WAIT_LOOKUP) {
                slot->state = SLOT_IN_LOOKUP;
                batch = 1;
                if (slot->has_user_id)
                    w->lookup_ids[ids++] = slot->user_id;
                break;
            }
        }
        if (batch == 0)
            w->suspect_running = false; /* it finished (or was poison) */
    }
    if (!w->suspect_running) {
        for (unsigned i = 0; i < w->count && batch < w->cfg->batch_max; i++) {
            struct slot *slot = slot_at(w, i);
            if (slot->state != SLOT_WAIT_LOOKUP)
                continue;
            slot->state = SLOT_IN_LOOKUP;
            batch++;
            if (slot->has_user_id)
                w->lookup_ids[ids++] = slot->user_id;
            if (!fault_ack_now(w, slot))
                return;
        }
    }
    if (batch == 0 && !w->suspect_running && w->suspects > 0 && w->mq != NULL) {
        int index = next_suspect(w);
        if (index >= 0) {
            run_suspect(w, (unsigned)index);
            /* Its lookup now, not a poll timeout later.  Once: the suspect
             * is running, so this call cannot pick another. */
            start_lookup(w, now);
        }
        return;
    }
    if (batch == 0)
        return;
    w->in_lookup = batch;
    w->stats->lookups++;
    if (!db_lookup(w->db, w->lookup_ids, ids, err, sizeof err))
        db_failed(w, err, now);
}

/* Replies for every job of the finished lookup, published back to back;
 * their confirms are awaited together by the loop. */
static void on_lookup_result(struct worker *w)
{
    size_t n_templates;
    const struct greet_template *templates = db_result_templates(w->db, &n_templates);

    for (unsigned i = 0; i < w->count && w->in_lookup > 0 && w->mq != NULL; i++) {
        unsigned index = (w->head + i) % w->cap;
        struct slot *slot = &w->slots[index];
        const struct greet_prefs *prefs;
        const char *language;
        struct mq_publish_props props = {0};

        if (slot->state != SLOT_IN_LOOKUP)
            continue;
        w->in_lookup--;
        prefs = slot->has_user_id ? db_result_prefs(w->db, slot->user_id) : NULL;
        buf_reset(&w->message);
        language = greet_message(&w->message, slot_name(slot), prefs, templates, n_templates);
        if (language == NULL ||
            !reply_encode_ok(&w->reply, slot_job_id(slot), w->message.data, language)) {
            broker_lost(w, "out of memory encoding a reply");
            break;
        }
        props.content_type = CONTENT_TYPE_JSON;
        props.message_id = slot_job_id(slot);
        props.message_id_len = strlen(slot_job_id(slot));
        if (slot->has_correlation) {
            props.correlation_id = slot->text.data + slot->correlation_at;
            props.correlation_id_len = slot->correlation_len;
        }
        slot->state = SLOT_WAIT_CONFIRM;
        if (!publish_for(w, index, slot_reply_to(slot), &props, w->reply.data, w->reply.len))
            break;
    }
    w->in_lookup = 0;
    db_result_clear(w->db);
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
        on_lookup_result(w);
        break;
    case DB_STEP_FAILED:
        if (before == DB_CONNECTING) {
            double delay = backoff_next(&w->db_backoff);
            struct log_line line;
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

/* ---- The loop -------------------------------------------------------- */

static int poll_timeout(const struct worker *w, double now)
{
    double deadline = now + POLL_CAP_MS / 1000.0;

    if (w->cfg->heartbeat > 0 && now + w->cfg->heartbeat / 4 < deadline)
        deadline = now + w->cfg->heartbeat / 4;
    if (w->mq == NULL && w->mq_retry_at < deadline)
        deadline = w->mq_retry_at;
    if (db_state(w->db) == DB_DOWN && w->db_retry_at < deadline)
        deadline = w->db_retry_at;
    if (w->lookup_retry_at > now && w->lookup_retry_at < deadline)
        deadline = w->lookup_retry_at;
    if (w->draining && w->drain_deadline < deadline)
        deadline = w->drain_deadline;
    if (w->next_stats > 0 && w->next_stats < deadline)
        deadline = w->next_stats;
    if (w->mq != NULL && mq_has_buffered(w->mq))
        return 0;
    return clock_ms_until(deadline, POLL_CAP_MS);
}

static void drain_wake_pipe(int fd)
{
    char bytes[64];

    while (read(fd, bytes, sizeof bytes) > 0)
        ;
}

static bool init(struct worker *w, const struct config *cfg, struct worker_stats *stats)
{
    memset(w, 0, sizeof *w);
    w->cfg = cfg;
    w->stats = stats;
    w->mq_settings.url = cfg->amqp_url;
    w->mq_settings.cacert = cfg->amqp_cacert;
    w->mq_settings.client_name = "greet-worker";
    w->mq_settings.heartbeat = cfg->heartbeat;
    w->mq_settings.timeout = CONNECT_TIMEOUT;
    w->topology.jobs_queue = cfg->jobs_queue;
    w->topology.reply_queue = cfg->reply_queue;
    w->topology.dead_queue = cfg->dead_queue;
    w->topology.delivery_limit = cfg->delivery_limit;

    /* Twice the prefetch: slots acked one by one stay in the ring until
     * the head passes them, while the broker fills the window again. */
    w->cap = 2 * (unsigned)cfg->prefetch;
    w->pub_cap = 2 * w->cap; /* a poison job publishes twice */
    w->slots = calloc(w->cap, sizeof *w->slots);
    w->publishes = calloc(w->pub_cap, sizeof *w->publishes);
    w->lookup_ids = calloc((size_t)cfg->batch_max, sizeof *w->lookup_ids);
    w->db = db_new(cfg->database_url, "greet-worker", cfg->db_timeout);
    backoff_init(&w->mq_backoff, BACKOFF_BASE, BACKOFF_CAP, (uint64_t)getpid() * 2654435761u);
    backoff_init(&w->db_backoff, BACKOFF_BASE, BACKOFF_CAP, (uint64_t)getpid() * 40503u + 1);
    backoff_init(&w->random, 1, 1, (uint64_t)getpid() ^ (uint64_t)(clock_now() * 1e6));
    if (cfg->stats_interval > 0)
        w->next_stats = clock_now() + cfg->stats_interval;
#ifdef GREET_FAULT_INJECTION
    w->fault_crash_job = getenv("GREET_FAULT_CRASH_JOB");
    w->fault_ack_early =
        getenv("GREET_FAULT_ACK_EARLY") && strcmp(getenv("GREET_FAULT_ACK_EARLY"), "1") == 0;
    if (w->fault_crash_job || w->fault_ack_early)
        log_msg(LOG_WARN, "fault.injection", "fault-injection build with a fault armed");
#endif
    return w->slots && w->publishes && w->lookup_ids && w->db;
}

static void teardown(struct worker *w)
{
    for (unsigned i = 0; w->slots && i < w->cap; i++) {
        free(w->slots[i].held);
        buf_free(&w->slots[i].held_body);
        buf_free(&w->slots[i].text);
    }
    db_free(w->db);
    free(w->slots);
    free(w->publishes);
    free(w->lookup_ids);
    buf_free(&w->message);
    buf_free(&w->reply);
}

int worker_run(const struct config *cfg, volatile sig_atomic_t *stop, int wake_fd,
               struct worker_stats *stats)
{
    struct worker w;
    struct pollfd fds[3];

    if (!init(&w, cfg, stats)) {
        log_msg(LOG_ERROR, "worker.start_failed", "out of memory");
        teardown(&w);
        return 1;
    }

    for (;;) {
        double now = clock_now();
        int n_fds = 0, mq_index = -1, db_index = -1;

        if (*stop && !w.draining) {
            struct log_line line;
            w.draining = true;
            w.drain_deadline = now + cfg->shutdown_timeout;
            log_begin(&line, LOG_INFO, "shutdown.start");
            log_int(&line, "in_hand", w.count);
            log_double(&line, "deadline_s", cfg->shutdown_timeout);
            log_end(&line);
        }
        if (w.draining && w.count == 0 && (w.mq == NULL || mq_cancel_settled(w.mq)))
            break;
        if (w.draining && now >= w.drain_deadline)
            break;

        ensure_broker(&w, now);
        ensure_db(&w, now);
        update_consuming(&w);
        start_lookup(&w, now);

        fds[n_fds].fd = wake_fd;
        fds[n_fds++].events = POLLIN;
        if (w.mq != NULL) {
            mq_index = n_fds;
            fds[n_fds].fd = mq_fd(w.mq);
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
            log_error_event(LOG_ERROR, "worker.poll_failed", strerror(errno));
            break;
        }
        now = clock_now();

        if (fds[0].revents)
            drain_wake_pipe(wake_fd);
        if (mq_index >= 0 && w.mq != NULL && fds[mq_index].revents)
            mq_saw_input(w.mq, now);
        if (w.mq != NULL)
            on_broker_events(&w);
        if (db_index >= 0 && fds[db_index].revents)
            on_db_ready(&w, now);
        check_db_stall(&w, now);
        if (w.mq != NULL && !mq_heartbeat_ok(w.mq, now))
            broker_lost(&w, "missed broker heartbeats");
        if (w.mq != NULL) {
            ack_finished(&w);
            if (w.mq != NULL)
                mq_release_buffers(w.mq);
        }
        if (w.next_stats > 0 && now >= w.next_stats) {
            log_stats(&w, "worker.stats");
            w.next_stats = now + cfg->stats_interval;
        }
    }

    if (w.count > 0) {
        struct log_line line;
        stats->returned_at_shutdown = w.count;
        log_begin(&line, LOG_WARN, "shutdown.deadline");
        log_int(&line, "returned", w.count);
        log_str(&line, "msg", "jobs still in hand go back to the broker");
        log_end(&line);
    }
    /* Closing the channel hands anything unacked back to the broker. */
    mq_close(w.mq);
    w.mq = NULL;
    log_stats(&w, "worker.stopped");
    teardown(&w);
    return 0;
}
