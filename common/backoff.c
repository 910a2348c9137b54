/* backoff.c - jittered exponential backoff; see backoff.h. */
#include "backoff.h"

void backoff_init(struct backoff *b, double base, double cap, uint64_t seed)
{
    b->base = base;
    b->cap = cap;
    b->attempt = 0;
    b->rng = seed ? seed : 0x9e3779b97f4a7c15ULL; /* xorshift must not start at 0 */
}

double backoff_random(struct backoff *b)
{
    b->rng ^= b->rng >> 12;
    b->rng ^= b->rng << 25;
    b->rng ^= b->rng >> 27;
    return (double)((b->rng * 0x2545f4914f6cdd1dULL) >> 11) / 9007199254740992.0; /* 2^53 */
}

double backoff_next(struct backoff *b)
{
    double ceiling = b->base;

    for (unsigned i = 0; i < b->attempt && ceiling < b->cap; i++)
        ceiling *= 2;
    if (ceiling > b->cap)
        ceiling = b->cap;
    if (b->attempt < 64)
        b->attempt++;
    return ceiling / 2 + backoff_random(b) * (ceiling / 2);
}

void backoff_reset(struct backoff *b)
{
    b->attempt = 0;
}
