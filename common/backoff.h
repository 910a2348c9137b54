/* backoff.h - capped exponential backoff with jitter, for reconnecting.
 *
 * The n-th delay is drawn from [d/2, d] with d = min(cap, base * 2^n), so
 * workers that lost the same broker at the same moment do not all come
 * back in the same millisecond.  Pure: the random state lives here. */
#ifndef GREET_BACKOFF_H
#define GREET_BACKOFF_H

#include <stdint.h>

struct backoff {
    double base;
    double cap;
    unsigned attempt;
    uint64_t rng;
};

/* The reconnect schedule of every program, broker and database alike:
 * from 100 ms, doubling, capped at 5 s.  The cap is the longest a program
 * sits idle after the server it lost is back, so it is kept short: a
 * worker that backed off for 30 s after a 15 s broker restart left its
 * share of the backlog waiting for 16 s more (the fault suite's
 * broker_restart).  An attempt every 2.5 to 5 s per program costs a down
 * server nothing: a refused TCP connect, or a failed PostgreSQL start-up. */
#define RECONNECT_BASE 0.1
#define RECONNECT_CAP  5.0

void backoff_init(struct backoff *b, double base, double cap, uint64_t seed);
/* The delay before the next attempt, in seconds. */
double backoff_next(struct backoff *b);
/* After a success: the next failure starts again from base. */
void backoff_reset(struct backoff *b);
/* Uniform in [0, 1), from the same generator (xorshift64*). */
double backoff_random(struct backoff *b);

#endif
