/* status.c - the worker's HTTP endpoints; see status.h. */
#include "status.h"

#include "clock.h"
#include "http.h"
#include "http_addr.h"

#include <stdio.h>
#include <string.h>

#define TEXT    "text/plain; charset=utf-8"
#define METRICS "text/plain; version=0.0.4; charset=utf-8"

static void handle(void *ctx, const char *path, struct http_reply *reply)
{
    struct status *st = ctx;
    struct worker_metrics m;
    double published_at, stalled;
    char line[320];

    pthread_mutex_lock(&st->lock);
    memcpy(&m, &st->shown, sizeof m);
    published_at = st->published_at;
    pthread_mutex_unlock(&st->lock);

    if (strcmp(path, "/metrics") == 0) {
        reply->content_type = METRICS;
        if (!worker_metrics_render(&m, GREET_VERSION, &reply->body))
            reply->status = 500;
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        stalled = clock_now() - published_at;
        if (stalled > st->stall_limit) {
            reply->status = 503;
            snprintf(line, sizeof line, "stalled: the event loop has not turned for %.1f s\n",
                     stalled);
        } else {
            snprintf(line, sizeof line, "ok\n");
        }
    } else if (strcmp(path, "/readyz") == 0) {
        char why[256];
        if (worker_metrics_ready(&m, why, sizeof why)) {
            snprintf(line, sizeof line, "ready\n");
        } else {
            reply->status = 503;
            snprintf(line, sizeof line, "%s\n", why);
        }
    } else {
        reply->status = 404;
        snprintf(line, sizeof line, "not found: try /metrics, /healthz or /readyz\n");
    }
    if (!buf_append_str(&reply->body, line))
        reply->status = 500;
}

bool status_start(struct status *st, const char *addr, double stall_limit, char *err, size_t errlen)
{
    struct http_addr parsed;

    memset(st, 0, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    st->started = true;
    st->stall_limit = stall_limit;
    st->published_at = clock_now();
    if (addr[0] == '\0')
        return true;
    if (!http_addr_parse(addr, &parsed, err, errlen))
        return false;
    st->http = http_start(&parsed, handle, st, err, errlen);
    return st->http != NULL;
}

bool status_due(const struct status *st, double now, unsigned state)
{
    return st->http != NULL &&
           (st->pending || state != st->state || now - st->last_publish >= STATUS_PUBLISH_INTERVAL);
}

void status_publish(struct status *st, const struct worker_metrics *m, double now, unsigned state)
{
    if (st->http == NULL)
        return;
    if (pthread_mutex_trylock(&st->lock) != 0) {
        st->pending = true;
        return;
    }
    memcpy(&st->shown, m, sizeof *m);
    st->published_at = now;
    pthread_mutex_unlock(&st->lock);
    st->last_publish = now;
    st->pending = false;
    st->state = state;
}

void status_stop(struct status *st)
{
    if (!st->started)
        return;
    http_stop(st->http); /* joins the thread: no handler runs after this */
    st->http = NULL;
    pthread_mutex_destroy(&st->lock);
    st->started = false;
}
