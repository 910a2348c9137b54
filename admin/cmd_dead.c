/* cmd_dead.c - greet-admin dead list, replay and purge.
 *
 * Looking at the dead queue without losing, moving or spending anything.
 * AMQP 0-9-1 has no way to browse a queue: a message is seen only by
 * taking it.  So list and replay take the dead jobs one at a time with
 * basic.get, unacked, and never put one back by hand: closing the channel
 * at the end hands back every job still held, in one go.
 *
 *   - Nothing is lost: an unacked message belongs to the queue.  Whatever
 *     happens to this process (kill -9 included), the broker takes back
 *     every job it had not acked.  Replay acks a job only after its copy
 *     in the jobs queue was confirmed, so a crash in between leaves a
 *     duplicate (the job is both dead and queued again), never a loss.
 *   - Nothing moves: a quorum queue puts what a closed channel hands
 *     back ahead of the jobs never taken, behind the ones handed back
 *     earlier and not taken since, in the order they were taken
 *     (basic.reject or basic.nack with requeue would send them to the
 *     back when the queue has no delivery limit).  So a run takes every
 *     job that was ready when it started -- past --limit too, which only
 *     bounds what is listed or replayed -- and the queue comes back in
 *     its order.  Jobs dead-lettered meanwhile (a replayed poison job
 *     dying again) are not taken: none is listed or replayed twice.
 *   - No delivery limit is spent.  A quorum queue counts each message it
 *     is handed back (x-delivery-count): every listing adds one to every
 *     job it took.  The dead queue is declared with x-queue-type only,
 *     no x-delivery-limit: RabbitMQ 3.x then has no limit at all, so the
 *     count means nothing there.  RabbitMQ 4 gives every quorum queue a
 *     default limit of 20 and drops what passes it when, as here, there is
 *     no dead-letter exchange: a job listed twenty times would be gone.
 *     So a job whose count reached DEAD_REFRESH_AT (dead.h) is refreshed
 *     while it is held: a copy without x-delivery-count is published to
 *     the dead queue and confirmed, then the original is acked (a crash in
 *     between leaves two copies).  That job moves to the end of the queue;
 *     nothing else moves, and no count stays above DEAD_REFRESH_AT.
 *   - Replayed jobs start afresh: their copies leave the death headers
 *     behind (dead_header_dropped_on_replay), x-delivery-count included,
 *     so they get a whole delivery limit in the jobs queue and a worker
 *     does not take them for redeliveries (suspects).
 *
 * What a listing cannot do: see a job another consumer holds at the time
 * (another listing, a greet-replies reading the dead queue). */
#include "buf.h"
#include "clock.h"
#include "commands.h"
#include "confirms.h"
#include "dead.h"
#include "mq.h"
#include "signals.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>

/* How long a publish may wait for the broker's confirm. */
#define CONFIRM_TIMEOUT 30.0

enum dead_mode { MODE_LIST, MODE_REPLAY };

struct dead_run {
    const struct config *cfg;
    const char *name; /* "greet-admin dead list", for messages */
    enum dead_mode mode;
    struct link link;
    struct confirms confirms; /* one publish at a time */
    struct dead_filter filter;
    struct rows rows;
    struct buf job_id;
    bool settled, returned; /* the publish in flight */
    enum confirm_outcome outcome;
    unsigned long in_queue; /* ready when the run started: no more are taken */
    unsigned long taken, matched, replayed, refused, refreshed;
    bool unroutable; /* the jobs queue is gone: replaying stops */
    char err[512];
};

static void on_settled(void *ctx, uint64_t owner, enum confirm_outcome outcome)
{
    struct dead_run *d = ctx;

    (void)owner;
    d->settled = true;
    d->outcome = outcome;
}

/* Publishes a copy of m (minus the headers drop names) to queue, and waits
 * for the broker's confirm: 1 confirmed, 0 refused (nacked, or returned
 * unroutable: d->returned), -1 the connection failed (d->err).  m's body
 * is not valid after a return. */
static int publish_confirmed(struct dead_run *d, const char *queue, const struct mq_message *m,
                             mq_header_filter drop)
{
    struct mq *mq = d->link.mq;
    double deadline = clock_now() + CONFIRM_TIMEOUT;
    uint64_t seq;

    d->settled = d->returned = false;
    if (!mq_publish_copy(mq, queue, m, drop, true /* mandatory */, &seq, d->err, sizeof d->err))
        return -1;
    if (!confirms_track(&d->confirms, seq, seq)) {
        snprintf(d->err, sizeof d->err, "publish %llu out of sequence", (unsigned long long)seq);
        return -1;
    }
    while (!d->settled) {
        struct pollfd pfd;
        struct mq_event ev;
        int got = 0;

        while (!d->settled && (got = mq_next_event(mq, &ev, d->err, sizeof d->err)) == 1) {
            /* A return comes before the confirm of the same publish. */
            if (ev.type == MQ_EVENT_RETURN)
                d->returned = true;
            else if (ev.type == MQ_EVENT_CONFIRM)
                confirms_settle(&d->confirms, ev.seq, ev.multiple, ev.nacked, on_settled, d);
        }
        if (d->settled)
            break;
        if (got < 0)
            return -1;
        if (clock_now() >= deadline) {
            snprintf(d->err, sizeof d->err, "the broker did not confirm a publish to %s in %.0f s",
                     queue, CONFIRM_TIMEOUT);
            return -1;
        }
        pfd.fd = mq_fd(mq);
        pfd.events = POLLIN;
        pfd.revents = 0;
        if (!mq_has_buffered(mq) && poll(&pfd, 1, 200) > 0)
            mq_saw_input(mq, clock_now());
        if (!mq_heartbeat_ok(mq, clock_now())) {
            snprintf(d->err, sizeof d->err, "missed broker heartbeats");
            return -1;
        }
    }
    return d->outcome == CONFIRM_ACKED && !d->returned ? 1 : 0;
}

/* Moves m to the jobs queue: 1 done (acked here), 0 refused (still held),
 * -1 failed (d->err). */
static int replay(struct dead_run *d, const struct mq_message *m)
{
    int published = publish_confirmed(d, d->cfg->jobs_queue, m, dead_header_dropped_on_replay);

    if (published == 1 && !mq_ack(d->link.mq, m->delivery_tag, false, d->err, sizeof d->err))
        return -1;
    if (published == 0 && d->returned)
        d->unroutable = true;
    return published;
}

/* A held job listed DEAD_REFRESH_AT times gets a fresh count (see the top
 * of this file).  false when the connection failed (d->err). */
static bool refresh(struct dead_run *d, const struct mq_message *m)
{
    int published = publish_confirmed(d, d->cfg->dead_queue, m, dead_header_dropped_on_refresh);

    if (published < 0)
        return false;
    if (published == 0) /* still held: handed back with the others */
        return true;
    d->refreshed++;
    return mq_ack(d->link.mq, m->delivery_tag, false, d->err, sizeof d->err);
}

static void add_row(struct dead_run *d, const struct mq_message *m, const char *job_id,
                    const char *how, const char *action)
{
    char count[32];
    const char *values[5];

    snprintf(count, sizeof count, "%lld", m->delivery_count);
    values[0] = job_id;
    values[1] = how;
    values[2] = m->greet_error.present ? m->greet_error.data : NULL;
    if (d->mode == MODE_LIST) {
        values[3] = m->greet_detail.present ? m->greet_detail.data : NULL;
        values[4] = count;
    } else {
        values[3] = action;
    }
    rows_add(&d->rows, values);
}

static bool limit_reached(const struct dead_run *d)
{
    return d->cfg->limit > 0 && d->matched >= (unsigned long long)d->cfg->limit;
}

/* One dead job taken from the queue; false when the connection failed. */
static bool handle(struct dead_run *d, const struct mq_message *m)
{
    const char *greet_error = m->greet_error.present ? m->greet_error.data : NULL;
    const char *how = dead_how(greet_error, m->death_reason.present ? m->death_reason.data : NULL);
    const char *message_id = m->message_id.present ? m->message_id.data : NULL;
    const char *job_id =
        dead_job_id(m->body, m->body_len, message_id, &d->job_id) ? d->job_id.data : NULL;
    bool matches = !limit_reached(d) && dead_matches(&d->filter, job_id, greet_error, how);
    const char *action = NULL;

    if (matches)
        d->matched++;
    if (matches && d->mode == MODE_REPLAY && !d->cfg->dry_run) {
        int replayed = replay(d, m);
        if (replayed < 0)
            return false;
        if (replayed == 1)
            d->replayed++;
        else
            d->refused++;
        action = replayed == 1 ? "replayed" : d->returned ? "unroutable" : "refused";
    } else {
        if (matches && d->mode == MODE_REPLAY)
            action = "would replay";
        if (dead_needs_refresh(m->delivery_count) && !refresh(d, m))
            return false;
    }
    if (matches)
        add_row(d, m, job_id, how, action);
    return true;
}

/* What every connection needs: confirms (replays and refreshes are
 * confirmed) and, to replay, the topology as the producer declares it. */
static bool setup(struct mq *mq, void *ctx, char *err, size_t errlen)
{
    struct dead_run *d = ctx;

    if (d->mode == MODE_REPLAY && !mq_declare_topology(mq, &d->link.topology, err, errlen))
        return false;
    return mq_confirm_select(mq, err, errlen);
}

/* Takes the jobs ready at the start, one at a time, all of them even past
 * --limit: what a closed channel hands back goes behind the jobs handed
 * back before and not taken since, so only taking them all keeps the
 * queue's order.  false on a failure (d->err). */
static bool take_all(struct dead_run *d)
{
    const char *queue = d->cfg->dead_queue;

    if (!mq_queue_depth(d->link.mq, queue, &d->in_queue, d->err, sizeof d->err))
        return false;
    while (d->taken < d->in_queue && !d->unroutable && !signals_stop) {
        struct mq_message m;
        int got = mq_get(d->link.mq, queue, &m, d->err, sizeof d->err);

        if (got < 0)
            return false;
        if (got == 0) /* taken by someone else meanwhile */
            break;
        d->taken++;
        if (!handle(d, &m))
            return false;
        mq_release_buffers(d->link.mq);
    }
    return true;
}

static void summary(const struct dead_run *d)
{
    unsigned long skipped = d->taken - d->matched;
    const char *queue = d->cfg->dead_queue;

    fprintf(stderr, "%s: ", d->name);
    if (d->mode == MODE_LIST)
        fprintf(stderr, "%lu listed of %lu dead jobs in %s", d->matched, d->in_queue, queue);
    else if (d->cfg->dry_run)
        fprintf(stderr, "%lu would be replayed, %lu skipped; nothing moved (--dry-run)", d->matched,
                skipped);
    else
        fprintf(stderr, "%lu replayed to %s, %lu skipped (left in %s)", d->replayed,
                d->cfg->jobs_queue, skipped, queue);
    if (d->refused > 0)
        fprintf(stderr, ", %lu refused by the broker (left in %s)", d->refused, queue);
    if (d->refreshed > 0)
        fprintf(stderr, "; %lu listed %d times were refreshed (now at the end of %s)", d->refreshed,
                DEAD_REFRESH_AT, queue);
    fputc('\n', stderr);
}

static int run(struct dead_run *d, enum rows_format format)
{
    static const struct rows_column list_columns[] = {
        {"job_id", false}, {"died", false},          {"error", false},
        {"detail", false}, {"delivery_count", true},
    };
    static const struct rows_column replay_columns[] = {
        {"job_id", false},
        {"died", false},
        {"error", false},
        {"action", false},
    };
    bool ok, written;

    d->filter.error = d->cfg->error_code;
    d->filter.job_id = d->cfg->job_id;
    if (!confirms_init(&d->confirms, 1)) {
        fprintf(stderr, "%s: out of memory\n", d->name);
        return 1;
    }
    if (d->mode == MODE_LIST)
        rows_init(&d->rows, format, stdout, list_columns, 5);
    else
        rows_init(&d->rows, format, stdout, replay_columns, 4);
    if (!cmd_connect(&d->link, d->cfg, d->name, setup, d)) {
        confirms_free(&d->confirms);
        return 1;
    }
    ok = take_all(d);
    written = rows_finish(&d->rows);
    /* Hands back every job still held, at the head of the queue. */
    link_close(&d->link);
    summary(d);
    if (!ok)
        fprintf(stderr, "%s: %s; every job not %s is still in %s\n", d->name, d->err,
                d->mode == MODE_LIST ? "refreshed" : "replayed", d->cfg->dead_queue);
    if (d->unroutable)
        fprintf(stderr, "%s: the jobs queue %s is missing (replays came back unroutable)\n",
                d->name, d->cfg->jobs_queue);
    if (signals_stop)
        fprintf(stderr, "%s: interrupted\n", d->name);
    if (!written)
        fprintf(stderr, "%s: writing to stdout failed\n", d->name);
    rows_free(&d->rows);
    buf_free(&d->job_id);
    confirms_free(&d->confirms);
    return ok && written && d->refused == 0 && !signals_stop ? 0 : 1;
}

int cmd_dead_list(const struct config *cfg, enum rows_format format)
{
    struct dead_run d;

    memset(&d, 0, sizeof d);
    d.cfg = cfg;
    d.name = "greet-admin dead list";
    d.mode = MODE_LIST;
    return run(&d, format);
}

int cmd_dead_replay(const struct config *cfg, enum rows_format format)
{
    struct dead_run d;

    memset(&d, 0, sizeof d);
    d.cfg = cfg;
    d.name = "greet-admin dead replay";
    d.mode = MODE_REPLAY;
    return run(&d, format);
}

/* Deletes what is ready in the dead queue (queue.purge: not the jobs a
 * consumer holds at the time); without --yes, only counts them. */
int cmd_dead_purge(const struct config *cfg)
{
    static const char name[] = "greet-admin dead purge";
    const char *queue = cfg->dead_queue;
    unsigned long count;
    struct link link;
    char err[512];
    bool ok;

    if (!cmd_connect(&link, cfg, name, NULL, NULL))
        return 1;
    if (!cfg->yes) {
        ok = mq_queue_depth(link.mq, queue, &count, err, sizeof err);
        link_close(&link);
        if (!ok) {
            fprintf(stderr, "%s: %s\n", name, err);
            return 1;
        }
        fprintf(stderr,
                "%s: this would delete the %lu dead job(s) in %s, for good; nothing was deleted: "
                "add --yes to delete them\n",
                name, count, queue);
        return 2;
    }
    ok = mq_queue_purge_count(link.mq, queue, &count, err, sizeof err);
    link_close(&link);
    if (!ok) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 1;
    }
    fprintf(stderr, "%s: deleted %lu dead job(s) from %s\n", name, count, queue);
    return 0;
}
