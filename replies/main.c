/* greet-replies: a reply-queue subscriber, meant to be copied.
 *
 * It shows the two rules every subscriber needs:
 *   1. ack a reply only after it has been handled (here: written to
 *      stdout and flushed), so a crash loses nothing -- the broker
 *      redelivers what was not acked;
 *   2. expect redeliveries: the same job_id with the same body.  --dedupe
 *      drops a reply whose message_id was already printed in this run. */
#include "clock.h"
#include "config.h"
#include "link.h"
#include "log.h"
#include "mq.h"
#include "mq_url.h"
#include "signals.h"
#include "stdfds.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void set_shortstr(json_t *obj, const char *key, const struct mq_shortstr *value)
{
    if (value->present)
        json_object_set_new(obj, key, json_stringn(value->data, value->len));
}

/* --envelope: the body inside its properties, for looking at messages
 * (the dead queue's x-greet-* headers) rather than consuming replies. */
static char *envelope(const struct mq_message *m)
{
    json_t *env = json_object(), *headers = json_object();
    json_t *body = json_loadb(m->body, m->body_len, JSON_DECODE_ANY, NULL);
    char *text;

    set_shortstr(env, "message_id", &m->message_id);
    set_shortstr(env, "correlation_id", &m->correlation_id);
    set_shortstr(env, "reply_to", &m->reply_to);
    set_shortstr(env, "content_type", &m->content_type);
    json_object_set_new(env, "persistent", json_boolean(m->persistent));
    json_object_set_new(env, "redelivered", json_boolean(m->redelivered));
    set_shortstr(headers, "x-greet-error", &m->greet_error);
    set_shortstr(headers, "x-greet-detail", &m->greet_detail);
    if (m->delivery_count > 0)
        json_object_set_new(headers, "x-delivery-count", json_integer(m->delivery_count));
    json_object_set_new(env, "headers", headers);
    /* A body that is not JSON is shown as a string (null if not UTF-8). */
    json_object_set_new(env, "body", body ? body : json_stringn(m->body, m->body_len));
    text = json_dumps(env, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(env);
    return text;
}

/* Writes one reply as a line; true once it is out of our hands. */
static bool print_reply(const struct mq_message *m, bool with_envelope)
{
    if (with_envelope) {
        char *text = envelope(m);
        bool ok = text != NULL && fputs(text, stdout) != EOF;
        free(text);
        return ok && fputc('\n', stdout) != EOF && fflush(stdout) == 0;
    }
    return fwrite(m->body, 1, m->body_len, stdout) == m->body_len && fputc('\n', stdout) != EOF &&
           fflush(stdout) == 0;
}

struct subscriber {
    const struct config *cfg;
    struct link link;
    unsigned prefetch;
    json_t *seen; /* --dedupe: message_ids printed so far */
    unsigned long long printed, dropped;
};

/* Handles one delivery; false when stdout failed (then nothing is acked). */
static bool handle(struct subscriber *s, const struct mq_message *m, char *err, size_t errlen)
{
    const char *id = m->message_id.present ? m->message_id.data : NULL;

    if (s->cfg->dedupe && id != NULL && json_object_get(s->seen, id) != NULL) {
        s->dropped++;
    } else {
        if (!print_reply(m, s->cfg->envelope)) {
            snprintf(err, errlen, "writing to stdout: %s", strerror(errno));
            return false;
        }
        s->printed++;
        if (s->cfg->dedupe && id != NULL)
            json_object_set_new(s->seen, id, json_true());
    }
    /* Handled (printed or knowingly dropped): now, and only now, ack. */
    return mq_ack(s->link.mq, m->delivery_tag, false, err, errlen);
}

/* What every new connection needs (link.h): the queue, declared as the
 * worker declares it, a prefetch, and the subscription. */
static bool subscribe(struct mq *mq, void *ctx, char *err, size_t errlen)
{
    const struct subscriber *s = ctx;

    return mq_declare_queue(mq, s->cfg->reply_queue, err, errlen) &&
           mq_qos(mq, s->prefetch, err, errlen) && mq_consume(mq, s->cfg->reply_queue, err, errlen);
}

/* Reads until --count, --timeout or a signal.  A lost broker connection
 * is survived: replies not yet acked come again (a duplicate that
 * --dedupe drops), none is lost.  Returns the exit status. */
static int run(struct subscriber *s)
{
    const struct config *cfg = s->cfg;
    double deadline = cfg->timeout > 0 ? clock_now() + cfg->timeout : 0;
    char err[512];
    struct mq_event ev;

    s->prefetch = (unsigned)cfg->prefetch;
    if (cfg->count > 0 && (unsigned long long)cfg->count < s->prefetch)
        s->prefetch = (unsigned)cfg->count; /* take no more than we will print */
    link_init(&s->link, cfg, "greet-replies", subscribe, s);
    /* Not there at the start: an error to report, not to wait out. */
    if (!link_ensure(&s->link, clock_now(), true /* quiet: reported here */)) {
        fprintf(stderr, "greet-replies: %s\n", s->link.error);
        return 1;
    }

    while (!signals_stop && (cfg->count == 0 || s->printed < (unsigned long long)cfg->count)) {
        struct pollfd pfd;
        double now = clock_now();
        int got = 0, ready;

        if (deadline > 0 && now >= deadline) {
            if (cfg->count > 0) {
                fprintf(stderr, "greet-replies: timed out with %llu of %lld replies\n", s->printed,
                        cfg->count);
                link_close(&s->link);
                return 1;
            }
            break;
        }
        if (!link_ensure(&s->link, now, false)) {
            poll(NULL, 0, link_wait_ms(&s->link, now, 500));
            continue;
        }
        pfd.fd = mq_fd(s->link.mq);
        pfd.events = POLLIN;
        pfd.revents = 0;
        ready = mq_has_buffered(s->link.mq)
                    ? 1
                    : poll(&pfd, 1, deadline > 0 ? clock_ms_until(deadline, 500) : 500);
        if (ready > 0)
            mq_saw_input(s->link.mq, clock_now());
        while (s->printed < (unsigned long long)cfg->count || cfg->count == 0) {
            got = mq_next_event(s->link.mq, &ev, err, sizeof err);
            if (got <= 0)
                break;
            if (ev.type == MQ_EVENT_CANCELLED) {
                snprintf(err, sizeof err,
                         "the broker cancelled the subscription (queue %s deleted?)",
                         cfg->reply_queue);
                got = -1;
                break;
            }
            if (ev.type == MQ_EVENT_DELIVERY && !handle(s, &ev.message, err, sizeof err)) {
                if (ferror(stdout)) {
                    fprintf(stderr, "greet-replies: %s\n", err);
                    link_close(&s->link); /* unacked: the broker keeps the reply */
                    return 1;
                }
                got = -1;
                break;
            }
        }
        if (got >= 0 && !mq_heartbeat_ok(s->link.mq, clock_now())) {
            snprintf(err, sizeof err, "missed broker heartbeats");
            got = -1;
        }
        if (got < 0) {
            link_lost(&s->link, clock_now(), err, 0);
            continue;
        }
        mq_release_buffers(s->link.mq);
    }
    /* Closing returns any delivery we did not print to the queue. */
    link_close(&s->link);
    if (cfg->dedupe && s->dropped > 0)
        fprintf(stderr, "greet-replies: dropped %llu duplicate(s)\n", s->dropped);
    return 0;
}

/* Every reply was flushed before its ack; this catches --help and a
 * failing close.  A run that failed already said why. */
static int close_stdout(int status)
{
    if (!stdfds_close_stdout() && status == 0) {
        fprintf(stderr, "greet-replies: writing to stdout: %s\n", strerror(errno));
        return 1;
    }
    return status;
}

int main(int argc, char **argv)
{
    static const struct config_urls urls = {mq_url_list_mask, NULL /* no database */};
    struct config cfg;
    struct subscriber s = {0};
    enum log_level level = LOG_WARN;
    int status;

    /* Before the broker socket is opened: it must never become stdout. */
    if (stdfds_reserve() != 0) {
        fprintf(stderr, "greet-replies: cannot open /dev/null: %s\n", strerror(errno));
        return 1;
    }
    status =
        config_startup(&cfg, PROGRAM_REPLIES, &urls, "greet-replies",
                       "Print the replies of a reply queue as JSON lines, acking each once it is "
                       "written.",
                       argc, argv);

    if (status >= 0)
        return close_stdout(status);
    /* stdout carries the replies: logs go to stderr. */
    log_level_parse(cfg.log_level, &level); /* checked by config_load */
    log_init("greet-replies", level);
    log_set_fd(STDERR_FILENO);
    config_log_effective(&cfg);
    signals_install(false /* no wake pipe */);
    s.cfg = &cfg;
    s.seen = json_object();
    status = s.seen ? run(&s) : 1;
    json_decref(s.seen);
    config_free(&cfg);
    return close_stdout(status);
}
