/* producer.c - the producer's publish/confirm/reply loop; see producer.h. */
#include "producer.h"

#include "buf.h"
#include "clock.h"
#include "confirms.h"
#include "jobsource.h"
#include "link.h"
#include "log.h"
#include "mq.h"
#include "mq_url.h"
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Publishes in flight before waiting for confirms: enough to keep the
 * broker busy, small enough to bound what a failure leaves unconfirmed. */
#define CONFIRM_WINDOW       4096
#define WAIT_DEFAULT_TIMEOUT 60.0
#define MAX_LISTED           20
/* --id-prefix: 1 to 64 characters, so up to 256 bytes of UTF-8; a
 * generated job_id adds "-" and a sequence number. */
#define ID_PREFIX_MAX_CHARS 64
#define ID_PREFIX_SIZE      (ID_PREFIX_MAX_CHARS * 4 + 1)
#define GENERATED_ID_SIZE   (ID_PREFIX_SIZE + 21)
/* A synthetic job: its job_id written as JSON (a '"' or '\\' doubles)
 * and a user_id. */
#define SYNTHETIC_JOB_SIZE (2 * GENERATED_ID_SIZE + 64)
/* --jwt-key: the last token made for a user_id is used again while it is
 * young (a tenth of its life, at most a minute), so that a synthetic load
 * over USERS users signs about USERS tokens a minute, not one a job.  A
 * token's room in a job (an RS512 signature alone is 342 bytes). */
#define TOKEN_CACHE_SIZE 16384
#define TOKEN_REUSE_MAX  60
#define TOKEN_ROOM       2048

enum mode { MODE_SINGLE, MODE_FILE, MODE_SYNTHETIC };

struct cached_token {
    long long user_id; /* 0: empty */
    long long issued;
    struct buf text;
};

/* A job kept in memory (single and file modes): offsets into arena. */
struct stored_job {
    size_t body_off, body_len;
    size_t id_off; /* NUL-terminated message_id in arena */
};

struct producer {
    const struct config *cfg;
    enum mode mode;
    size_t total;
    struct buf arena;
    struct stored_job *jobs;
    size_t n_jobs, jobs_cap;
    char id_prefix[ID_PREFIX_SIZE];
    struct buf scratch;
    char scratch_id[GENERATED_ID_SIZE];

    /* --jwt-key: every job with a user_id gets a token (token.h). */
    bool signing;
    struct token_signer signer;
    struct cached_token *tokens; /* TOKEN_CACHE_SIZE, by user_id */
    long long token_reuse;       /* seconds a cached token is used again */
    bool warned_no_user_id;
    char sign_error[256]; /* a token that could not be made: the run stops */
    struct job job;       /* a file line decoded, to sign it */

    struct link link;
    char reply_queue[256];
    struct confirms confirms; /* owner: the job's index */

    size_t next;      /* the next job never sent yet */
    size_t confirmed; /* jobs confirmed at least once */
    unsigned char *confirmed_bits;
    size_t failed, listed_failures;
    /* Jobs to send again (after a lost connection), before new ones. */
    size_t *resend;
    size_t n_resend, resend_cap;
    bool out_of_memory; /* in a confirms callback */
    bool stale_channel; /* in a confirms callback: a job refused twice */
    /* Jobs the broker refused (basic.nack), to send again at a time
     * (confirms.h): per job its nacks so far (allocated at the first). */
    unsigned char *nacks;
    struct deferred {
        size_t job;
        double at;
    } * deferred;
    size_t n_deferred, deferred_cap;
    /* --wait: message_id -> job index, removed when answered. */
    json_t *awaiting;
    double *sent_at; /* per job: when it was (last) published */
    size_t replies_ok, replies_error;
    /* The replies go to stdout; once writing there failed (a closed pipe,
     * a full disk) there is no point going on: errno of the failure. */
    int stdout_errno;
    double *latencies;
    size_t n_latencies;
    double started, last_progress;
    bool show_progress;
};

/* ---- Tokens (--jwt-key) ---------------------------------------------- */

/* Reads the key and checks it by making a token.  Returns 0, or the exit
 * status. */
static int set_up_signing(struct producer *p)
{
    const struct config *cfg = p->cfg;
    struct buf key = {0};
    char err[512];
    bool ok;

    if (cfg->jwt_key == NULL || cfg->jwt_key[0] == '\0')
        return 0;
    ok = token_key_load(cfg->jwt_key, &key, err, sizeof err) &&
         token_signer_init(&p->signer, cfg->jwt_alg, (const unsigned char *)key.data, key.len,
                           cfg->jwt_ttl, cfg->jwt_issuer, cfg->jwt_audience, err, sizeof err);
    token_key_forget(&key);
    if (!ok) {
        fprintf(stderr, "greet-producer: --jwt-key: %s\n", err);
        return 2;
    }
    p->tokens = calloc(TOKEN_CACHE_SIZE, sizeof *p->tokens);
    if (p->tokens == NULL) {
        fprintf(stderr, "greet-producer: out of memory\n");
        token_signer_free(&p->signer);
        return 1;
    }
    p->signing = true;
    p->token_reuse = cfg->jwt_ttl / 10 < TOKEN_REUSE_MAX ? cfg->jwt_ttl / 10 : TOKEN_REUSE_MAX;
    return 0;
}

static void free_signing(struct producer *p)
{
    for (size_t i = 0; p->tokens != NULL && i < TOKEN_CACHE_SIZE; i++)
        buf_free(&p->tokens[i].text);
    free(p->tokens);
    if (p->signing)
        token_signer_free(&p->signer);
}

/* A token for user_id, issued now or a little before; NULL with
 * p->sign_error filled when none can be made. */
static const char *token_for(struct producer *p, long long user_id)
{
    long long now = (long long)time(NULL);
    struct cached_token *c = &p->tokens[(unsigned long long)user_id % TOKEN_CACHE_SIZE];

    if (c->user_id == user_id && now >= c->issued && now - c->issued < p->token_reuse)
        return c->text.data;
    c->user_id = 0;
    if (!token_sign(&p->signer, user_id, now, &c->text, p->sign_error, sizeof p->sign_error))
        return NULL;
    c->user_id = user_id;
    c->issued = now;
    return c->text.data;
}

static void warn_no_user_id(struct producer *p)
{
    if (p->warned_no_user_id)
        return;
    p->warned_no_user_id = true;
    fprintf(stderr, "greet-producer: warning: a job without a user_id gets no token (a token is "
                    "signed for a user_id); a worker with GREET_AUTH=jwt refuses it\n");
}

/* Gives the job in body a token for user_id (0: none, so no token).
 * false with p->sign_error filled when it cannot. */
static bool sign_job(struct producer *p, struct buf *body, long long user_id)
{
    const char *token;

    if (!p->signing)
        return true;
    if (user_id <= 0) {
        warn_no_user_id(p);
        return true;
    }
    if ((token = token_for(p, user_id)) == NULL)
        return false;
    if (!jobsource_add_token(body, token)) {
        snprintf(p->sign_error, sizeof p->sign_error, "out of memory adding a token");
        return false;
    }
    return true;
}

/* A file's job, checked already: signed unless it has a token of its own.
 * A "token": null would be a second "token" key: refused (err). */
static bool sign_file_job(struct producer *p, struct buf *body, char *err, size_t errlen)
{
    char detail[256];

    if (!p->signing)
        return true;
    if (job_decode(body->data, body->len, &p->job, detail, sizeof detail) != JOB_OK ||
        p->job.token_state != JOB_TOKEN_NONE)
        return true;
    if (!sign_job(p, body, p->job.has_user_id ? p->job.user_id : 0)) {
        snprintf(err, errlen, "%s", p->sign_error);
        return false;
    }
    if (job_decode(body->data, body->len, &p->job, detail, sizeof detail) != JOB_OK) {
        snprintf(err, errlen,
                 "its \"token\" is null: give a token, or leave the key out to "
                 "have one made");
        return false;
    }
    return true;
}

/* ---- Input ----------------------------------------------------------- */

static bool store_job(struct producer *p, const char *body, size_t len, const char *message_id)
{
    struct stored_job *job;

    if (p->n_jobs == p->jobs_cap) {
        size_t cap = p->jobs_cap ? p->jobs_cap * 2 : 64;
        struct stored_job *grown = realloc(p->jobs, cap * sizeof *grown);
        if (grown == NULL)
            return false;
        p->jobs = grown;
        p->jobs_cap = cap;
    }
    job = &p->jobs[p->n_jobs++];
    job->body_off = p->arena.len;
    job->body_len = len;
    if (!buf_append(&p->arena, body, len))
        return false;
    job->id_off = p->arena.len;
    return buf_append(&p->arena, message_id, strlen(message_id) + 1);
}

/* The job_id of a raw line when it has a usable one, for message_id. */
static void raw_message_id(const char *line, size_t len, const char *fallback, char *out,
                           size_t outlen)
{
    json_t *obj = json_loadb(line, len, JSON_DECODE_ANY, NULL);
    json_t *id = json_is_object(obj) ? json_object_get(obj, "job_id") : NULL;

    if (json_is_string(id) && json_string_length(id) > 0 &&
        json_string_length(id) <= MQ_SHORTSTR_MAX)
        snprintf(out, outlen, "%s", json_string_value(id));
    else
        snprintf(out, outlen, "%s", fallback);
    json_decref(obj);
}

/* Reads every line first: a file with a bad line is refused whole, before
 * anything is sent.  Returns 0, or the exit status. */
static int read_file(struct producer *p)
{
    const char *path = p->cfg->file;
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    char *line = NULL;
    size_t line_cap = 0, line_no = 0, bad = 0;
    ssize_t got;
    struct buf body = {0};

    if (in == NULL) {
        fprintf(stderr, "greet-producer: cannot read %s: %s\n", path, strerror(errno));
        return 2;
    }
    while ((got = getline(&line, &line_cap, in)) >= 0) {
        size_t len = (size_t)got;
        char generated[GENERATED_ID_SIZE], job_id[JOB_ID_MAX_CHARS * 4 + 1], err[300];

        line_no++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (strspn(line, " \t") == len) /* blank lines separate, nothing more */
            continue;
        jobsource_make_id(generated, sizeof generated, p->id_prefix, line_no);
        if (p->cfg->raw) {
            raw_message_id(line, len, generated, job_id, sizeof job_id);
            if (!store_job(p, line, len, job_id))
                goto oom;
            continue;
        }
        if (!jobsource_from_line(line, len, generated, &body, job_id, sizeof job_id, err,
                                 sizeof err) ||
            !sign_file_job(p, &body, err, sizeof err)) {
            if (bad++ < MAX_LISTED)
                fprintf(stderr, "greet-producer: %s:%zu: %s\n", strcmp(path, "-") ? path : "stdin",
                        line_no, err);
            continue;
        }
        if (!store_job(p, body.data, body.len, job_id))
            goto oom;
    }
    if (ferror(in)) {
        fprintf(stderr, "greet-producer: reading %s: %s\n", path, strerror(errno));
        bad++;
    }
    free(line);
    buf_free(&body);
    if (in != stdin)
        fclose(in);
    if (bad > 0) {
        fprintf(stderr, "greet-producer: %zu bad line(s); nothing was sent\n", bad);
        return 2;
    }
    p->total = p->n_jobs;
    return 0;

oom:
    fprintf(stderr, "greet-producer: out of memory reading %s\n", path);
    free(line);
    buf_free(&body);
    if (in != stdin)
        fclose(in);
    return 1;
}

static int prepare_single(struct producer *p)
{
    const struct config *cfg = p->cfg;
    char generated[GENERATED_ID_SIZE], err[300];
    const char *job_id = cfg->job_id;
    struct buf body = {0};
    int status = 0;

    if (job_id == NULL) {
        jobsource_make_id(generated, sizeof generated, p->id_prefix, 1);
        job_id = generated;
    }
    if (!jobsource_from_fields(job_id, cfg->user_id, cfg->name, &body, err, sizeof err)) {
        fprintf(stderr, "greet-producer: %s\n", err);
        status = 2;
    } else if (!sign_job(p, &body, cfg->user_id)) {
        fprintf(stderr, "greet-producer: %s\n", p->sign_error);
        status = 1;
    } else if (!store_job(p, body.data, body.len, job_id)) {
        fprintf(stderr, "greet-producer: out of memory\n");
        status = 1;
    }
    buf_free(&body);
    p->total = p->n_jobs;
    return status;
}

/* The body and message_id of job i; synthetic ones are made on the fly
 * so a load of millions costs no memory.  false, with p->sign_error
 * filled, when its token cannot be made (the body is then unsigned). */
static bool job_at(struct producer *p, size_t i, const char **body, size_t *len,
                   const char **message_id)
{
    long long user_id = (long long)(1 + i % (size_t)p->cfg->users);
    bool ok;

    if (p->mode != MODE_SYNTHETIC) {
        *body = p->arena.data + p->jobs[i].body_off;
        *len = p->jobs[i].body_len;
        *message_id = p->arena.data + p->jobs[i].id_off;
        return true;
    }
    jobsource_make_id(p->scratch_id, sizeof p->scratch_id, p->id_prefix, (unsigned long long)i + 1);
    /* Cannot fail: producer_run reserved scratch for the longest one. */
    jobsource_write(&p->scratch, p->scratch_id, user_id, NULL);
    ok = sign_job(p, &p->scratch, user_id);
    *body = p->scratch.data;
    *len = p->scratch.len;
    *message_id = p->scratch_id;
    return ok;
}

static void make_prefix(char *out, size_t outlen)
{
    uint64_t random = 0;
    int fd = open("/dev/urandom", O_RDONLY);

    if (fd < 0 || read(fd, &random, sizeof random) != (ssize_t)sizeof random)
        random = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    if (fd >= 0)
        close(fd);
    snprintf(out, outlen, "job-%016llx", (unsigned long long)random);
}

/* ---- Output ---------------------------------------------------------- */

static void note_failure(struct producer *p, const char *message_id, const char *why)
{
    p->failed++;
    if (p->listed_failures++ < MAX_LISTED)
        fprintf(stderr, "greet-producer: job %s not confirmed: %s\n", message_id, why);
}

static void show_progress(struct producer *p, double now, bool final)
{
    double elapsed = now - p->started;

    if (!p->show_progress || (!final && now - p->last_progress < 0.5))
        return;
    p->last_progress = now;
    fprintf(stderr, "\r\033[Ksent %zu/%zu, confirmed %zu (%.0f jobs/s)", p->next, p->total,
            p->confirmed, elapsed > 0 ? (double)p->confirmed / elapsed : 0.0);
    if (p->awaiting)
        fprintf(stderr, ", replies %zu", p->replies_ok + p->replies_error);
    if (final)
        fputc('\n', stderr);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *sorted, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);
    return sorted[rank == 0 ? 0 : rank - 1];
}

/* ---- The loop -------------------------------------------------------- */

static bool is_confirmed(const struct producer *p, size_t job)
{
    return p->confirmed_bits[job / 8] & (1u << (job % 8));
}

static void mark_confirmed(struct producer *p, size_t job)
{
    if (!is_confirmed(p, job)) {
        p->confirmed_bits[job / 8] |= (unsigned char)(1u << (job % 8));
        p->confirmed++;
    }
}

static bool schedule_resend(struct producer *p, size_t job)
{
    if (p->n_resend == p->resend_cap) {
        size_t cap = p->resend_cap ? 2 * p->resend_cap : 1024;
        size_t *grown = realloc(p->resend, cap * sizeof *grown);
        if (grown == NULL)
            return false;
        p->resend = grown;
        p->resend_cap = cap;
    }
    p->resend[p->n_resend++] = job;
    return true;
}

static void on_reply(struct producer *p, const struct mq_message *m, double now)
{
    json_t *body = json_loadb(m->body, m->body_len, 0, NULL);
    const char *key = m->message_id.present ? m->message_id.data : NULL;
    const char *status;
    json_t *job;

    if (key == NULL && json_is_object(body))
        key = json_string_value(json_object_get(body, "job_id"));
    job = key ? json_object_get(p->awaiting, key) : NULL;
    /* Not ours, or a duplicate of one already printed (a redelivery, or a
     * job sent again after a lost connection). */
    if (job == NULL) {
        json_decref(body);
        return;
    }
    status = json_is_object(body) ? json_string_value(json_object_get(body, "status")) : NULL;
    if (status && strcmp(status, "ok") == 0)
        p->replies_ok++;
    else
        p->replies_error++;
    p->latencies[p->n_latencies++] = now - p->sent_at[json_integer_value(job)];
    /* Buffered: a failure shows when the batch is flushed. */
    fwrite(m->body, 1, m->body_len, stdout);
    fputc('\n', stdout);
    json_object_del(p->awaiting, key);
    json_decref(body);
}

/* A refused job is sent again after a wait, CONFIRMS_NACK_RETRIES times;
 * false when it is refused for good (or out of memory). */
static bool defer_resend(struct producer *p, size_t job)
{
    if (p->nacks == NULL && (p->nacks = calloc(p->total, 1)) == NULL)
        return false;
    if (p->nacks[job] >= CONFIRMS_NACK_RETRIES)
        return false;
    if (p->n_deferred == p->deferred_cap) {
        size_t cap = p->deferred_cap ? 2 * p->deferred_cap : 256;
        struct deferred *grown = realloc(p->deferred, cap * sizeof *grown);
        if (grown == NULL)
            return false;
        p->deferred = grown;
        p->deferred_cap = cap;
    }
    p->nacks[job]++;
    p->deferred[p->n_deferred].job = job;
    p->deferred[p->n_deferred++].at = clock_now() + confirms_retry_delay(p->nacks[job]);
    return true;
}

/* The refused jobs whose wait is over join the ones to send again; returns
 * the earliest wait not over (0: none). */
static double take_deferred(struct producer *p, double now)
{
    double next = 0;
    size_t kept = 0;

    for (size_t i = 0; i < p->n_deferred; i++) {
        if (p->deferred[i].at <= now && schedule_resend(p, p->deferred[i].job))
            continue;
        if (next == 0 || p->deferred[i].at < next)
            next = p->deferred[i].at;
        p->deferred[kept++] = p->deferred[i];
    }
    p->n_deferred = kept;
    return next;
}

/* A publish settled (confirms.h callback). */
static void on_settled(void *ctx, uint64_t job, enum confirm_outcome outcome)
{
    struct producer *p = ctx;
    const char *body, *id;
    char why[128];
    size_t len;

    switch (outcome) {
    case CONFIRM_ACKED:
        mark_confirmed(p, (size_t)job);
        break;
    case CONFIRM_NACKED:
        /* Maybe only for the moment (a quorum queue electing a leader). */
        if (defer_resend(p, (size_t)job)) {
            /* The worker's rule (worker.c): a queue of ours refusing the
             * same message twice speaks for a stale channel -- one opened
             * on a surviving node just after a node loss had every
             * publish nacked for as long as it was open, longer than the
             * retries last.  A new connection gets a new channel; once
             * per job, so a queue that is really full cannot make a
             * loop of it. */
            if (p->nacks[job] == 2)
                p->stale_channel = true;
            break;
        }
        job_at(p, (size_t)job, &body, &len, &id);
        snprintf(why, sizeof why, "the broker refused it (basic.nack) all %d times it was sent",
                 CONFIRMS_NACK_RETRIES + 1);
        note_failure(p, id, why);
        break;
    case CONFIRM_LOST:
        /* Sent on a connection that died before confirming it: again. */
        if (!p->awaiting && !schedule_resend(p, (size_t)job))
            p->out_of_memory = true;
        break;
    }
}

static bool handle_events(struct producer *p, double now, char *err, size_t errlen)
{
    struct mq_event ev;
    uint64_t last_reply = 0;
    int got;

    while ((got = mq_next_event(p->link.mq, &ev, err, errlen)) == 1) {
        switch (ev.type) {
        case MQ_EVENT_CONFIRM:
            confirms_settle(&p->confirms, ev.seq, ev.multiple, ev.nacked, on_settled, p);
            break;
        case MQ_EVENT_RETURN:
            /* Unroutable: the jobs queue is gone.  Its confirm follows;
             * the job must not count as delivered. */
            snprintf(err, errlen, "a job was unroutable (jobs queue %s deleted?)",
                     p->cfg->jobs_queue);
            return false;
        case MQ_EVENT_DELIVERY:
            on_reply(p, &ev.message, now);
            last_reply = ev.message.delivery_tag;
            break;
        case MQ_EVENT_CANCELLED:
            snprintf(err, errlen, "the private reply queue was deleted");
            return false;
        }
    }
    if (got < 0)
        return false;
    /* A batch of replies is flushed at once: shown as they come, without
     * a write per line. */
    if (last_reply && fflush(stdout) != 0 && p->stdout_errno == 0)
        p->stdout_errno = errno;
    if (last_reply && !mq_ack(p->link.mq, last_reply, true /* multiple */, err, errlen))
        return false;
    mq_release_buffers(p->link.mq);
    return true;
}

static bool publish_job(struct producer *p, size_t job, char *err, size_t errlen)
{
    const char *body, *message_id;
    size_t len;
    uint64_t seq;
    struct mq_publish_props props = {0};

    if (!job_at(p, job, &body, &len, &message_id)) {
        snprintf(err, errlen, "%s", p->sign_error);
        return false;
    }
    props.content_type = "application/json";
    props.message_id = message_id;
    props.message_id_len = strlen(message_id);
    if (p->mode == MODE_SINGLE && p->cfg->correlation_id) {
        props.correlation_id = p->cfg->correlation_id;
        props.correlation_id_len = strlen(p->cfg->correlation_id);
    }
    props.reply_to = p->awaiting ? p->reply_queue : p->cfg->reply_to;
    if (!mq_publish(p->link.mq, p->cfg->jobs_queue, &props, body, len, true /* mandatory */, &seq,
                    err, errlen))
        return false;
    if (p->awaiting) {
        p->sent_at[job] = clock_now();
        if (json_object_get(p->awaiting, message_id) == NULL &&
            json_object_set_new(p->awaiting, message_id, json_integer((json_int_t)job)) != 0) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
    }
    if (!confirms_track(&p->confirms, seq, job)) {
        snprintf(err, errlen, "more publishes in flight than the confirm window");
        return false;
    }
    return true;
}

/* What every new connection needs: the topology, with --wait a private
 * reply queue, and confirm mode. */
static bool setup_broker(struct mq *mq, void *ctx, char *err, size_t errlen)
{
    struct producer *p = ctx;

    if (!mq_declare_topology(mq, &p->link.topology, err, errlen))
        return false;
    if (p->cfg->wait &&
        (!mq_declare_private_queue(mq, p->reply_queue, sizeof p->reply_queue, err, errlen) ||
         !mq_qos(mq, 1000, err, errlen) || !mq_consume(mq, p->reply_queue, err, errlen)))
        return false;
    return mq_confirm_select(mq, err, errlen);
}

/* The connection is gone: whatever it had not confirmed is sent again on
 * the next one.  With --wait the private reply queue went with it, so
 * every job still without a reply is sent again too (jobs are
 * idempotent; a late duplicate reply is ignored). */
static bool broker_lost(struct producer *p, const char *why, double now)
{
    if (p->show_progress)
        fputc('\n', stderr);
    link_lost(&p->link, now, why, (unsigned)confirms_in_flight(&p->confirms));
    p->n_resend = 0;
    if (p->awaiting) {
        const char *key;
        json_t *job;
        json_object_foreach(p->awaiting, key, job)
        {
            if (!schedule_resend(p, (size_t)json_integer_value(job)))
                return false;
        }
    }
    confirms_reset(&p->confirms, on_settled, p);
    return !p->out_of_memory;
}

/* Connects again when it is time; true when up. */
static bool reconnect(struct producer *p, double now)
{
    if (!link_ensure(&p->link, now, false))
        return false;
    fprintf(stderr, "greet-producer: reconnected; sending %zu job(s) again\n", p->n_resend);
    return true;
}

/* Publishes everything, waits for confirms and, with --wait, replies,
 * riding out broker restarts.  false when interrupted or out of time. */
static bool run_loop(struct producer *p, volatile sig_atomic_t *stop, double deadline, char *err,
                     size_t errlen)
{
    double rate = p->cfg->rate;

    for (;;) {
        double now = clock_now();
        double retry_at = take_deferred(p, now);
        bool more = p->next < p->total || p->n_resend > 0 || p->n_deferred > 0;
        bool waiting_replies = p->awaiting && json_object_size(p->awaiting) > 0;
        int timeout_ms = 200;
        struct pollfd pfd;
        int ready;

        if (*stop) {
            snprintf(err, errlen, "interrupted");
            return false;
        }
        if (p->stdout_errno != 0) {
            snprintf(err, errlen, "writing replies to stdout: %s", strerror(p->stdout_errno));
            return false;
        }
        if (!more && confirms_in_flight(&p->confirms) == 0 && !waiting_replies)
            return true;
        if (deadline > 0 && now >= deadline) {
            snprintf(err, errlen, "timed out after %.1f s",
                     p->cfg->timeout > 0 ? p->cfg->timeout : WAIT_DEFAULT_TIMEOUT);
            return false;
        }
        if (p->link.mq == NULL) {
            if (!reconnect(p, now)) {
                poll(NULL, 0, link_wait_ms(&p->link, now, 200));
                continue;
            }
        }
        while (p->n_resend > 0 && !confirms_full(&p->confirms)) {
            if (!publish_job(p, p->resend[--p->n_resend], err, errlen))
                goto failed;
        }
        while (p->next < p->total && !confirms_full(&p->confirms) &&
               (rate <= 0 || now >= p->started + (double)p->next / rate)) {
            if (!publish_job(p, p->next, err, errlen))
                goto failed;
            p->next++;
            /* Let confirms and replies in every so often. */
            if ((p->next & 255) == 0)
                break;
        }
        if (rate > 0 && p->next < p->total)
            timeout_ms = clock_ms_until(p->started + (double)p->next / rate, 200);
        else if (p->next < p->total && !confirms_full(&p->confirms))
            timeout_ms = 0;
        if (retry_at > 0 && clock_ms_until(retry_at, 200) < timeout_ms)
            timeout_ms = clock_ms_until(retry_at, 200);
        if (mq_has_buffered(p->link.mq))
            timeout_ms = 0;
        pfd.fd = mq_fd(p->link.mq);
        pfd.events = POLLIN;
        pfd.revents = 0;
        ready = poll(&pfd, 1, timeout_ms);
        if (ready < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return false;
        }
        now = clock_now();
        if (ready > 0)
            mq_saw_input(p->link.mq, now);
        if (!handle_events(p, now, err, errlen))
            goto lost;
        if (p->stale_channel) {
            p->stale_channel = false;
            snprintf(err, errlen, "the broker keeps refusing jobs to the jobs queue");
            goto lost;
        }
        if (!mq_heartbeat_ok(p->link.mq, now)) {
            snprintf(err, errlen, "missed broker heartbeats");
            goto lost;
        }
        show_progress(p, now, false);
        continue;
    failed:
        /* No token could be made: no connection would help. */
        if (p->sign_error[0] != '\0')
            return false;
    lost:
        if (!broker_lost(p, err, clock_now())) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
    }
}

static void print_summary(struct producer *p, double now)
{
    double elapsed = now - p->started;

    fprintf(stderr, "greet-producer: %zu jobs confirmed in %.3f s (%.0f jobs/s)", p->confirmed,
            elapsed, elapsed > 0 ? (double)p->confirmed / elapsed : 0.0);
    if (p->link.connects > 1)
        fprintf(stderr, "; %llu reconnect(s)", p->link.connects - 1);
    if (p->awaiting) {
        fprintf(stderr, "; replies: %zu ok, %zu error, %zu missing", p->replies_ok,
                p->replies_error, json_object_size(p->awaiting));
        if (p->n_latencies > 0) {
            qsort(p->latencies, p->n_latencies, sizeof *p->latencies, compare_doubles);
            fprintf(stderr, "; latency ms p50 %.2f p95 %.2f p99 %.2f max %.2f",
                    1000 * percentile(p->latencies, p->n_latencies, 0.50),
                    1000 * percentile(p->latencies, p->n_latencies, 0.95),
                    1000 * percentile(p->latencies, p->n_latencies, 0.99),
                    1000 * p->latencies[p->n_latencies - 1]);
        }
    }
    fputc('\n', stderr);
}

static void list_missing(struct producer *p)
{
    const char *key;
    json_t *value;
    size_t listed = 0;

    json_object_foreach(p->awaiting, key, value)
    {
        if (listed++ == MAX_LISTED) {
            fprintf(stderr, "greet-producer: ... and %zu more without a reply\n",
                    json_object_size(p->awaiting) - MAX_LISTED);
            break;
        }
        fprintf(stderr, "greet-producer: no reply for job %s\n", key);
    }
}

/* Names the jobs the broker never confirmed: they may or may not be
 * queued, and can be sent again (jobs are idempotent). */
static void list_unconfirmed(struct producer *p)
{
    size_t listed = 0;

    for (size_t job = 0; job < p->total && listed < MAX_LISTED; job++) {
        const char *body, *id;
        size_t len;
        if (is_confirmed(p, job))
            continue;
        job_at(p, job, &body, &len, &id);
        fprintf(stderr, "greet-producer: job %s was not confirmed\n", id);
        listed++;
    }
    fprintf(stderr, "greet-producer: %zu of %zu jobs not confirmed\n", p->total - p->confirmed,
            p->total);
}

int producer_run(const struct config *cfg, volatile sig_atomic_t *stop)
{
    struct producer p;
    char err[512] = "";
    int status = 0;
    double deadline = 0;
    bool ok;

    memset(&p, 0, sizeof p);
    p.cfg = cfg;
    if (cfg->id_prefix) {
        const char *problem =
            job_check_text(cfg->id_prefix, strlen(cfg->id_prefix), ID_PREFIX_MAX_CHARS);
        if (problem) {
            fprintf(stderr,
                    "greet-producer: --id-prefix %s (1 to 64 characters, no control characters)\n",
                    problem);
            return 2;
        }
        snprintf(p.id_prefix, sizeof p.id_prefix, "%s", cfg->id_prefix);
    } else {
        make_prefix(p.id_prefix, sizeof p.id_prefix);
    }
    p.mode = cfg->file ? MODE_FILE : cfg->count > 0 ? MODE_SYNTHETIC : MODE_SINGLE;
    status = set_up_signing(&p);
    if (status != 0)
        goto out;
    if (p.mode == MODE_FILE)
        status = read_file(&p);
    else if (p.mode == MODE_SINGLE)
        status = prepare_single(&p);
    else
        p.total = (size_t)cfg->count;
    if (status != 0)
        goto out;

    p.confirmed_bits = calloc(p.total / 8 + 1, 1);
    if (cfg->wait) {
        p.awaiting = json_object();
        p.latencies = malloc((p.total ? p.total : 1) * sizeof *p.latencies);
        p.sent_at = calloc(p.total ? p.total : 1, sizeof *p.sent_at);
    }
    if (!confirms_init(&p.confirms, CONFIRM_WINDOW) || p.confirmed_bits == NULL ||
        (p.mode == MODE_SYNTHETIC &&
         !buf_reserve(&p.scratch, SYNTHETIC_JOB_SIZE + (p.signing ? TOKEN_ROOM : 0))) ||
        (cfg->wait && (p.awaiting == NULL || p.latencies == NULL || p.sent_at == NULL))) {
        fprintf(stderr, "greet-producer: out of memory\n");
        status = 1;
        goto out;
    }
    link_init(&p.link, cfg, "greet-producer", setup_broker, &p);
    /* A broker that is not there at the start is an error to report, not
     * to wait out; once started, the producer rides out broker restarts. */
    if (!link_ensure(&p.link, clock_now(), true /* quiet: reported here */)) {
        char url[256];
        mq_url_mask(p.link.settings.url, url, sizeof url, NULL, 0);
        if (p.link.urls.n > 1) /* the error names them */
            fprintf(stderr, "greet-producer: %s\n", p.link.error);
        else
            fprintf(stderr, "greet-producer: broker %s: %s\n", url, p.link.error);
        status = 1;
        goto out;
    }

    p.show_progress = cfg->progress || (isatty(STDERR_FILENO) && p.total > 1000);
    p.started = clock_now();
    if (cfg->wait)
        deadline = p.started + (cfg->timeout > 0 ? cfg->timeout : WAIT_DEFAULT_TIMEOUT);
    else if (cfg->timeout > 0)
        deadline = p.started + cfg->timeout;
    ok = run_loop(&p, stop, deadline, err, sizeof err);
    show_progress(&p, clock_now(), true);
    if (!ok) {
        fprintf(stderr, "greet-producer: %s\n", err);
        status = 1;
    }
    if (p.confirmed < p.total || p.failed > 0) {
        list_unconfirmed(&p);
        status = 1;
    }
    if (p.awaiting && (json_object_size(p.awaiting) > 0 || p.replies_error > 0)) {
        list_missing(&p);
        status = 1;
    }
    print_summary(&p, clock_now());
    if (p.mode == MODE_SINGLE && !cfg->wait && status == 0) {
        const char *job_id = p.arena.data + p.jobs[0].id_off;
        /* The job is queued; the caller learns its id only from stdout. */
        if (printf("%s\n", job_id) < 0 || fflush(stdout) != 0) {
            fprintf(
                stderr,
                "greet-producer: job %s was sent, but writing its job_id to stdout failed: %s\n",
                job_id, strerror(errno));
            status = 1;
        }
    }

out:
    link_close(&p.link); /* stdout is main's to close, and to check */
    json_decref(p.awaiting);
    free(p.latencies);
    free(p.sent_at);
    confirms_free(&p.confirms);
    free(p.confirmed_bits);
    free(p.resend);
    free(p.nacks);
    free(p.deferred);
    free(p.jobs);
    buf_free(&p.arena);
    buf_free(&p.scratch);
    free_signing(&p);
    return status;
}
