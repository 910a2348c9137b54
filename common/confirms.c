/* confirms.c - publisher confirm tracking; see confirms.h. */
#include "confirms.h"

#include <stdlib.h>

bool confirms_init(struct confirms *c, size_t cap)
{
    c->ring = calloc(cap, sizeof *c->ring);
    c->cap = c->ring ? cap : 0;
    c->head = c->count = 0;
    c->first_seq = 1;
    return c->ring != NULL;
}

void confirms_free(struct confirms *c)
{
    free(c->ring);
    c->ring = NULL;
    c->cap = c->count = 0;
}

static struct confirm_entry *entry_at(struct confirms *c, size_t nth)
{
    return &c->ring[(c->head + nth) % c->cap];
}

bool confirms_track(struct confirms *c, uint64_t seq, uint64_t owner)
{
    struct confirm_entry *e;

    if (c->count == c->cap || seq != c->first_seq + c->count)
        return false;
    e = entry_at(c, c->count++);
    e->owner = owner;
    e->settled = false;
    return true;
}

static void pop_settled(struct confirms *c)
{
    while (c->count > 0 && c->ring[c->head].settled) {
        c->head = (c->head + 1) % c->cap;
        c->count--;
        c->first_seq++;
    }
}

size_t confirms_settle(struct confirms *c, uint64_t seq, bool multiple, bool nacked, confirms_fn fn,
                       void *ctx)
{
    enum confirm_outcome outcome = nacked ? CONFIRM_NACKED : CONFIRM_ACKED;
    size_t from = 0, to, settled = 0;

    if (c->count == 0 || seq < c->first_seq)
        return 0;                      /* nothing tracked, or already settled and popped */
    to = (size_t)(seq - c->first_seq); /* index of seq itself */
    if (to >= c->count) {
        if (!multiple)
            return 0; /* never tracked */
        to = c->count - 1;
    }
    if (!multiple)
        from = to;
    for (size_t i = from; i <= to && c->count > 0; i++) {
        struct confirm_entry *e = entry_at(c, i);
        if (e->settled)
            continue;
        e->settled = true;
        settled++;
        if (fn)
            fn(ctx, e->owner, outcome);
    }
    pop_settled(c);
    return settled;
}

void confirms_reset(struct confirms *c, confirms_fn fn, void *ctx)
{
    for (size_t i = 0; i < c->count; i++) {
        struct confirm_entry *e = entry_at(c, i);
        if (!e->settled && fn)
            fn(ctx, e->owner, CONFIRM_LOST);
    }
    c->head = c->count = 0;
    c->first_seq = 1;
}

size_t confirms_in_flight(const struct confirms *c)
{
    return c->count;
}

bool confirms_full(const struct confirms *c)
{
    return c->count == c->cap;
}

double confirms_retry_delay(unsigned nacks)
{
    return nacks == 0 ? 0.0 : 0.25 * (double)(1u << (nacks - 1 < 8 ? nacks - 1 : 8));
}
