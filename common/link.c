/* link.c - the broker link; see link.h. */
#include "link.h"

#include "buf.h"
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

void link_init(struct link *l, const struct config *cfg, const char *client_name,
               link_setup_fn setup, void *setup_ctx)
{
    /* config_load() checked the list; a failure here is a caller's bug,
     * reported on every attempt rather than crashing. */
    l->urls_ok = mq_url_list_parse(cfg->amqp_url, &l->urls, l->error, sizeof l->error);
    l->settings.url = l->urls_ok ? l->urls.urls[0] : "";
    l->settings.cacert = cfg->amqp_cacert;
    l->settings.cert = cfg->amqp_cert;
    l->settings.key = cfg->amqp_key;
    l->settings.client_name = client_name;
    l->settings.heartbeat = cfg->heartbeat;
    l->settings.timeout = LINK_TIMEOUT;
    l->topology.jobs_queue = cfg->jobs_queue;
    l->topology.reply_queue = cfg->reply_queue;
    l->topology.dead_queue = cfg->dead_queue;
    l->topology.delivery_limit = cfg->delivery_limit;
    l->setup = setup;
    l->setup_ctx = setup_ctx;
    l->mq = NULL;
    l->retry_at = 0;
    l->connects = 0;
    if (l->urls_ok)
        l->error[0] = '\0';
    /* Seeded per process: the jitter and the first URL are what spread
     * the workers out. */
    backoff_init(&l->backoff, RECONNECT_BASE, RECONNECT_CAP, (uint64_t)getpid() * 2654435761u);
    l->current = l->urls_ok ? (unsigned)(backoff_random(&l->backoff) * l->urls.n) % l->urls.n : 0;
}

/* One URL's connect and set-up; true when up. */
static bool try_url(struct link *l, unsigned index)
{
    char why[sizeof l->error];
    struct buf_fixed error;

    l->current = index;
    l->settings.url = l->urls.urls[index];
    l->mq = mq_connect(&l->settings, why, sizeof why);
    if (l->mq != NULL && (l->setup == NULL || l->setup(l->mq, l->setup_ctx, why, sizeof why)))
        return true;
    mq_abandon(l->mq);
    l->mq = NULL;
    buf_fixed_init(&error, l->error, sizeof l->error);
    if (l->urls.n > 1) { /* say which */
        char url[256];
        mq_url_mask(l->settings.url, url, sizeof url, NULL, 0);
        buf_fixed_add_str(&error, url);
        buf_fixed_add_str(&error, ": ");
    }
    buf_fixed_add_str(&error, why);
    return false;
}

bool link_ensure(struct link *l, double now, bool quiet)
{
    struct log_line line;
    char url[256];
    unsigned first = l->current;
    double delay = 0;

    if (l->mq != NULL)
        return true;
    if (now < l->retry_at || !l->urls_ok)
        return false;
    for (unsigned k = 0; k < l->urls.n; k++) {
        unsigned index = (first + k) % l->urls.n;
        if (try_url(l, index)) {
            backoff_reset(&l->backoff);
            l->connects++;
            mq_describe(l->mq, url, sizeof url);
            /* A reconnect is news for every program, the CLIs included. */
            log_begin(&line, l->connects > 1 ? LOG_WARN : LOG_INFO, "broker.connected");
            log_str(&line, "url", url);
            log_int(&line, "connects", (long long)l->connects);
            log_end(&line);
            return true;
        }
        if (k + 1 == l->urls.n) {
            delay = backoff_next(&l->backoff);
            l->retry_at = now + delay;
            l->current = first; /* the next round, in the same order */
        }
        /* quiet spares the caller a line on what it reports itself: that
         * all failed.  A dead node passed over is news either way. */
        if (!quiet || k + 1 < l->urls.n) {
            log_begin(&line, LOG_WARN, "broker.connect_failed");
            log_str(&line, "error", l->error);
            log_double(&line, "retry_in", delay);
            log_end(&line);
        }
    }
    if (l->urls.n > 1) {
        char last[sizeof l->error], head[64];
        struct buf_fixed error;
        memcpy(last, l->error, sizeof last);
        snprintf(head, sizeof head, "all %u broker URLs failed; the last, ", l->urls.n);
        buf_fixed_init(&error, l->error, sizeof l->error);
        buf_fixed_add_str(&error, head);
        buf_fixed_add_str(&error, last);
    }
    return false;
}

double link_lost(struct link *l, double now, const char *why, unsigned in_hand)
{
    struct log_line line;
    double delay = backoff_next(&l->backoff);

    snprintf(l->error, sizeof l->error, "%s", why);
    log_begin(&line, LOG_WARN, "broker.lost");
    log_str(&line, "error", why);
    log_int(&line, "in_hand", in_hand);
    log_double(&line, "retry_in", delay);
    log_end(&line);
    mq_abandon(l->mq);
    l->mq = NULL;
    l->retry_at = now + delay;
    /* The next round starts at one of the others, drawn at random: the
     * workers of a lost node spread over the rest, and try it last but
     * one at worst. */
    if (l->urls_ok && l->urls.n > 1)
        l->current = (l->current + 1 +
                      (unsigned)(backoff_random(&l->backoff) * (l->urls.n - 1)) % (l->urls.n - 1)) %
                     l->urls.n;
    return delay;
}

void link_close(struct link *l)
{
    mq_close(l->mq);
    l->mq = NULL;
}

int link_wait_ms(const struct link *l, double now, int cap_ms)
{
    double ms;

    if (l->mq != NULL || l->retry_at <= now)
        return l->mq != NULL ? cap_ms : 0;
    ms = (l->retry_at - now) * 1000 + 0.999;
    return ms > cap_ms ? cap_ms : (int)ms;
}
