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

void backoff_init(struct backoff *b, double base, double cap, uint64_t seed);
/* The delay before the next attempt, in seconds. */
double backoff_next(struct backoff *b);
/* After a success: the next failure starts again from base. */
void backoff_reset(struct backoff *b);
/* Uniform in [0, 1), from the same generator (xorshift64*). */
double backoff_random(struct backoff *b);

#endif
