/* link.h - the one broker link every program uses.
 *
 * It owns the connection's life: the settings, taken from the config in
 * one place; connect-or-retry-at, with jittered exponential backoff so
 * that workers that lost the same broker do not all come back in the same
 * millisecond; the set-up a program needs on every new connection
 * (declaring the topology, confirm mode, prefetch, consuming), given as a
 * callback; and the log lines of connects and losses, the same in every
 * program.  What a loss means for the work in hand stays the caller's. */
#ifndef GREET_LINK_H
#define GREET_LINK_H

#include "backoff.h"
#include "config.h"
#include "mq.h"
#include "mq_url.h"

#include <stdbool.h>

/* Called on every new connection; false with err filled to give it up. */
typedef bool (*link_setup_fn)(struct mq *mq, void *ctx, char *err, size_t errlen);

struct link {
    struct mq_settings settings; /* .url: the entry being tried or in use */
    struct mq_url_list urls;     /* AMQP_URL: one broker or a cluster's nodes */
    unsigned current;            /* the index of the URL in use or tried last */
    bool urls_ok;
    struct mq_topology topology; /* what the programs declare, from the config */
    link_setup_fn setup;
    void *setup_ctx;
    struct mq *mq; /* NULL while down */
    struct backoff backoff;
    double retry_at;
    unsigned long long connects; /* successful connects so far */
    char error[512];             /* why the last attempt failed */
};

/* The connect timeout, the handshake's and every set-up RPC's. */
#define LINK_TIMEOUT 10.0

/* Reconnects follow backoff.h's schedule (RECONNECT_BASE, RECONNECT_CAP). */
void link_init(struct link *l, const struct config *cfg, const char *client_name,
               link_setup_fn setup, void *setup_ctx);

/* Connects and sets up when down and it is time; true when up after the
 * call.  With several URLs, one attempt tries them all in turn, starting
 * at a random one (per process: workers spread over a cluster's nodes;
 * after a loss, at one of the others).  Each URL that fails while another
 * follows is logged (broker.connect_failed, retry_in 0); the last is
 * logged unless quiet (the caller reports it), its reason kept in
 * l->error, and the next attempt scheduled with backoff. */
bool link_ensure(struct link *l, double now, bool quiet);
/* The connection failed in use (why): dropped at once (the broker
 * requeues what was unacked: in_hand deliveries, for the log line
 * broker.lost), the next attempt scheduled.  Returns the delay. */
double link_lost(struct link *l, double now, const char *why, unsigned in_hand);
/* A polite close (bounded by the timeouts); the link is down after it. */
void link_close(struct link *l);

/* Milliseconds until the next attempt is due, at most cap_ms; cap_ms
 * while up. */
int link_wait_ms(const struct link *l, double now, int cap_ms);

#endif
