/* dead.h - what greet-admin decides about a dead job (pure): how it died,
 * which job it was, whether a filter takes it, which headers go when it
 * is moved, and when a listing must refresh it. */
#ifndef GREET_ADMIN_DEAD_H
#define GREET_ADMIN_DEAD_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

/* How a job died, from its headers: "reply_refused" or "poison" for the
 * worker's dead copies (x-greet-error: reply_refused, or any other code),
 * else the broker's dead-lettering reason ("delivery_limit" for a job that
 * crashed workers until the jobs queue gave up on it; "rejected",
 * "expired", "maxlen"), else "unknown" (put there by hand).  NULL or ""
 * means absent. */
const char *dead_how(const char *greet_error, const char *death_reason);

/* The dead job's job_id: the body's, when the body is a JSON object with
 * a non-empty string job_id; else message_id when it is non-empty.  Writes
 * it into out (emptied first); false when there is none (or out cannot
 * grow). */
bool dead_job_id(const char *body, size_t body_len, const char *message_id, struct buf *out);

/* What --error and --job-id select; NULL fields select everything.  error
 * is an x-greet-error code or a way of dying (dead_how): "invalid_json",
 * "poison", "delivery_limit"... */
struct dead_filter {
    const char *error;
    const char *job_id;
};

/* job_id, greet_error: NULL when absent; how: dead_how(). */
bool dead_matches(const struct dead_filter *filter, const char *job_id, const char *greet_error,
                  const char *how);

/* The headers a replayed job leaves behind, so it starts afresh in the
 * jobs queue: the worker's verdict (x-greet-*), the broker's history of
 * deaths (x-death, x-first-death-*, x-last-death-*) and the delivery count
 * (x-delivery-count: a worker takes a job that carries one for a
 * redelivery, a suspect).  Other headers stay. */
bool dead_header_dropped_on_replay(const char *key, size_t len);

/* A quorum queue counts every delivery handed back to it, and a listing
 * hands back every job it took (closing its channel), so each listing of
 * the dead queue adds one to x-delivery-count.  The dead queue is declared
 * without a delivery limit, which RabbitMQ 3.x takes for none; RabbitMQ 4
 * gives every quorum queue a default limit of 20 and, with no
 * dead-letter exchange, drops what passes it.  So a job that has been
 * listed DEAD_REFRESH_AT times is refreshed: a copy without the count is
 * confirmed on the dead queue, then the original is acked.  It moves to
 * the end of the queue, and no count stays above DEAD_REFRESH_AT. */
#define DEAD_REFRESH_AT 10
bool dead_needs_refresh(long long delivery_count);

/* The one header a refreshed dead job leaves behind: x-delivery-count. */
bool dead_header_dropped_on_refresh(const char *key, size_t len);

#endif
