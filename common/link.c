/* link.c - the broker link; see link.h. */
#include "link.h"

#include "log.h"

#include <stdio.h>
#include <unistd.h>

/* Reconnect delays start at 100 ms and double up to the program's cap. */
#define BACKOFF_BASE 0.1

void link_init(struct link *l, const struct config *cfg, const char *client_name,
               double backoff_cap, link_setup_fn setup, void *setup_ctx)
{
    l->settings.url = cfg->amqp_url;
    l->settings.cacert = cfg->amqp_cacert;
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
    l->error[0] = '\0';
    /* Seeded per process: the jitter is what spreads the workers out. */
    backoff_init(&l->backoff, BACKOFF_BASE, backoff_cap, (uint64_t)getpid() * 2654435761u);
}

bool link_ensure(struct link *l, double now, bool quiet)
{
    struct log_line line;
    char url[256];
    double delay;

    if (l->mq != NULL)
        return true;
    if (now < l->retry_at)
        return false;
    l->mq = mq_connect(&l->settings, l->error, sizeof l->error);
    if (l->mq != NULL &&
        (l->setup == NULL || l->setup(l->mq, l->setup_ctx, l->error, sizeof l->error))) {
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
    mq_abandon(l->mq);
    l->mq = NULL;
    delay = backoff_next(&l->backoff);
    l->retry_at = now + delay;
    if (!quiet) {
        log_begin(&line, LOG_WARN, "broker.connect_failed");
        log_str(&line, "error", l->error);
        log_double(&line, "retry_in", delay);
        log_end(&line);
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
