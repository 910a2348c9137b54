/* ledger.c - the worker's in-flight ledger; see ledger.h. */
#include "ledger.h"

#include "confirms.h"

#include <stdlib.h>
#include <string.h>

/* Every slot free, none in order. */
static void reset(struct ledger *l)
{
    l->head = l->count = 0;
    l->n_free = l->cap;
    for (unsigned i = 0; i < l->cap; i++)
        l->free_slots[i] = l->cap - 1 - i; /* slot 0 is taken first */
    memset(l->in_state, 0, sizeof l->in_state);
}

bool ledger_init(struct ledger *l, unsigned cap)
{
    memset(l, 0, sizeof *l);
    l->entries = calloc(cap, sizeof *l->entries);
    l->order = calloc(cap, sizeof *l->order);
    l->free_slots = calloc(cap, sizeof *l->free_slots);
    if (l->entries == NULL || l->order == NULL || l->free_slots == NULL) {
        ledger_free(l);
        return false;
    }
    l->cap = cap;
    reset(l);
    return true;
}

void ledger_free(struct ledger *l)
{
    free(l->entries);
    free(l->order);
    free(l->free_slots);
    memset(l, 0, sizeof *l);
}

unsigned ledger_slot(const struct ledger *l, unsigned nth)
{
    return l->order[(l->head + nth) % l->cap];
}

/* The head entry leaves the order: its slot is free again, or (tail) goes
 * to the back of the order. */
static void pop_head(struct ledger *l, bool to_tail)
{
    unsigned slot = l->order[l->head];

    l->head = (l->head + 1) % l->cap;
    if (to_tail)
        l->order[(l->head + l->count - 1) % l->cap] = slot;
    else {
        l->count--;
        l->free_slots[l->n_free++] = slot;
    }
}

const struct ledger_entry *ledger_entry(const struct ledger *l, unsigned slot)
{
    return &l->entries[slot];
}

unsigned ledger_count(const struct ledger *l)
{
    return l->count;
}

unsigned ledger_in_state(const struct ledger *l, enum ledger_state state)
{
    return l->in_state[0][state] + l->in_state[1][state];
}

bool ledger_suspect_running(const struct ledger *l)
{
    return l->in_state[1][LEDGER_WAITING] + l->in_state[1][LEDGER_LOOKUP] +
               l->in_state[1][LEDGER_PUBLISHED] >
           0;
}

unsigned ledger_suspects(const struct ledger *l)
{
    unsigned n = 0;

    for (unsigned s = 0; s < LEDGER_N_STATES; s++)
        n += l->in_state[1][s];
    return n;
}

bool ledger_wants_deliveries(const struct ledger *l)
{
    return l->in_state[1][LEDGER_SUSPECT] == 0 && !ledger_suspect_running(l);
}

/* The one place a state changes, and so the one place counts change. */
static void set_state(struct ledger *l, struct ledger_entry *e, enum ledger_state state)
{
    l->in_state[e->suspect][e->state]--;
    l->in_state[e->suspect][state]++;
    e->state = (unsigned char)state;
}

int ledger_add(struct ledger *l, uint64_t tag, bool redelivered)
{
    unsigned slot;
    struct ledger_entry *e;

    if (l->count == l->cap || l->n_free == 0)
        return -1;
    slot = l->free_slots[--l->n_free];
    l->order[(l->head + l->count++) % l->cap] = slot;
    e = &l->entries[slot];
    memset(e, 0, sizeof *e);
    e->tag = tag;
    e->suspect = redelivered;
    e->state = redelivered ? LEDGER_SUSPECT : LEDGER_WAITING;
    l->in_state[e->suspect][e->state]++;
    return (int)slot;
}

void ledger_suspect_started(struct ledger *l, unsigned slot)
{
    if (l->entries[slot].state == LEDGER_SUSPECT)
        set_state(l, &l->entries[slot], LEDGER_WAITING);
}

void ledger_lookup_started(struct ledger *l, unsigned slot)
{
    if (l->entries[slot].state == LEDGER_WAITING)
        set_state(l, &l->entries[slot], LEDGER_LOOKUP);
}

int ledger_lookup_failed(struct ledger *l, enum ledger_failure why)
{
    unsigned in_lookup = ledger_in_state(l, LEDGER_LOOKUP);
    int condemned = -1;

    for (unsigned i = 0; i < l->count; i++) {
        unsigned slot = ledger_slot(l, i);
        struct ledger_entry *e = &l->entries[slot];
        bool in_question;
        if (e->state != LEDGER_LOOKUP)
            continue;
        set_state(l, e, LEDGER_WAITING);
        if (why == LEDGER_FAIL_TRANSIENT)
            continue;
        if (e->lookup_failures < 255)
            e->lookup_failures++;
        in_question = why == LEDGER_FAIL_DATA || e->lookup_failures >= LEDGER_REPEATS;
        if (!in_question)
            continue;
        /* Alone and refused for its data: the failure is its own.  Other
         * errors only isolate: one that every lookup meets (a dropped
         * table) is the database's, and condemning on it would
         * dead-letter every job in hand. */
        if (why == LEDGER_FAIL_DATA && in_lookup == 1)
            condemned = (int)slot;
        /* Halve the batches it may be in: a bad row among n jobs is found
         * in about 2 log2(n) lookups, and the others go on meanwhile. */
        e->batch_cap = (unsigned short)(in_lookup > 1 ? in_lookup / 2 : 1);
    }
    return condemned;
}

void ledger_published(struct ledger *l, unsigned slot, unsigned publishes, bool dead_copy)
{
    struct ledger_entry *e = &l->entries[slot];

    e->publishes = (unsigned char)(e->publishes + publishes);
    e->dead_copy = e->dead_copy || dead_copy;
    if (e->state != LEDGER_PUBLISHED)
        set_state(l, e, LEDGER_PUBLISHED);
}

enum ledger_confirm_result ledger_confirmed(struct ledger *l, unsigned slot, bool dead_copy,
                                            bool nacked, bool may_retry, double now)
{
    struct ledger_entry *e = &l->entries[slot];

    if (e->state != LEDGER_PUBLISHED || e->publishes == 0)
        return LEDGER_PENDING; /* not ours to judge (cannot happen) */
    e->publishes--;
    if (nacked && dead_copy) {
        e->must_return = true;
    } else if (nacked && !e->dead_copy) {
        if (may_retry && e->nacks < CONFIRMS_NACK_RETRIES && e->publishes == 0) {
            e->nacks++;
            e->retry_at = now + confirms_retry_delay(e->nacks);
            set_state(l, e, LEDGER_WAITING);
            return LEDGER_RETRY;
        }
        return LEDGER_NEED_DEAD_COPY; /* the caller publishes it at once */
    }
    if (e->publishes > 0)
        return LEDGER_PENDING;
    if (e->must_return)
        return LEDGER_NEED_RETURN;
    set_state(l, e, LEDGER_DONE);
    return LEDGER_FINISHED;
}

void ledger_mark_acked(struct ledger *l, unsigned slot)
{
    l->entries[slot].acked = true;
}

void ledger_returned(struct ledger *l, unsigned slot)
{
    set_state(l, &l->entries[slot], LEDGER_SETTLED);
}

unsigned ledger_clear(struct ledger *l)
{
    unsigned held = l->count;

    reset(l);
    return held;
}

/* Picks the k-th suspect in delivery order, k drawn from random: each
 * crash sends back the crasher with the suspects still waiting, and a
 * random order gives every innocent one even odds or better of going
 * before it each round, so none is stuck behind it until the delivery
 * limit.  (Lowest delivery count first was tried: counts also grow with
 * returns the crasher does not share, and an innocent counted ahead of
 * the crasher was run after it every time.) */
static unsigned pick_suspect(const struct ledger *l, double random)
{
    unsigned suspects = l->in_state[1][LEDGER_SUSPECT];
    unsigned k = (unsigned)(random * suspects), seen = 0;

    if (k >= suspects)
        k = suspects - 1;
    for (unsigned i = 0; i < l->count; i++) {
        unsigned slot = ledger_slot(l, i);
        if (l->entries[slot].state == LEDGER_SUSPECT && seen++ == k)
            return slot;
    }
    return ledger_slot(l, 0); /* unreachable while the counts hold */
}

/* Waiting, and not for a retry later than now. */
static bool ready(const struct ledger_entry *e, double now)
{
    return e->state == LEDGER_WAITING && e->retry_at <= now;
}

double ledger_next_retry(const struct ledger *l, double now)
{
    double next = 0;

    for (unsigned i = 0; i < l->count; i++) {
        const struct ledger_entry *e = &l->entries[ledger_slot(l, i)];
        if (e->state == LEDGER_WAITING && e->retry_at > now && (next == 0 || e->retry_at < next))
            next = e->retry_at;
    }
    return next;
}

enum ledger_action ledger_next(const struct ledger *l, double now, unsigned batch_max,
                               double random, unsigned *slots, unsigned *n)
{
    unsigned waiting = ledger_in_state(l, LEDGER_WAITING);
    int isolated = -1; /* the first isolated entry waiting */

    *n = 0;
    if (ledger_in_state(l, LEDGER_LOOKUP) > 0)
        return LEDGER_IDLE; /* one lookup at a time */
    if (ledger_suspect_running(l)) {
        /* Its own lookup, if it needs one, goes alone. */
        for (unsigned i = 0; i < l->count && l->in_state[1][LEDGER_WAITING] > 0; i++) {
            unsigned slot = ledger_slot(l, i);
            if (l->entries[slot].suspect && l->entries[slot].state == LEDGER_WAITING) {
                if (!ready(&l->entries[slot], now))
                    return LEDGER_IDLE;
                slots[(*n)++] = slot;
                return LEDGER_LOOK_UP;
            }
        }
        return LEDGER_IDLE;
    }
    if (waiting > 0) {
        for (unsigned i = 0; i < l->count && (*n < batch_max || isolated < 0); i++) {
            unsigned slot = ledger_slot(l, i);
            const struct ledger_entry *e = &l->entries[slot];
            if (!ready(e, now))
                continue;
            if (e->batch_cap == 0 && *n < batch_max)
                slots[(*n)++] = slot;
            else if (e->batch_cap > 0 && isolated < 0)
                isolated = (int)i;
        }
        /* Isolated jobs go in batches of their own, as small as their
         * caps, and take turns with the others: a coin toss (random)
         * when both wait, so that neither a backlog of innocent jobs nor
         * one whose lookups keep failing holds the other. */
        if (isolated >= 0 && (*n == 0 || random < 0.5)) {
            unsigned cap = batch_max;
            *n = 0;
            for (unsigned i = (unsigned)isolated; i < l->count && *n < cap; i++) {
                unsigned slot = ledger_slot(l, i);
                const struct ledger_entry *e = &l->entries[slot];
                if (!ready(e, now) || e->batch_cap == 0)
                    continue;
                if (e->batch_cap < cap)
                    cap = e->batch_cap;
                if (*n < cap)
                    slots[(*n)++] = slot;
            }
        }
        if (*n > 0)
            return LEDGER_LOOK_UP;
        return LEDGER_IDLE; /* all of them wait for a retry */
    }
    /* A suspect runs once everything else is finished and acked. */
    if (l->in_state[1][LEDGER_SUSPECT] > 0 &&
        l->count == l->in_state[1][LEDGER_SUSPECT] + ledger_in_state(l, LEDGER_SETTLED)) {
        slots[(*n)++] = pick_suspect(l, random);
        return LEDGER_RUN_SUSPECT;
    }
    return LEDGER_IDLE;
}

void ledger_take_acks(struct ledger *l, uint64_t *multiple_tag, uint64_t *singles,
                      unsigned *n_singles)
{
    uint64_t floor = UINT64_MAX; /* the lowest tag still in work */
    unsigned turns = l->count;

    *multiple_tag = 0;
    *n_singles = 0;
    for (unsigned i = 0; i < l->count; i++) {
        const struct ledger_entry *e = &l->entries[ledger_slot(l, i)];
        if (e->state != LEDGER_DONE && e->state != LEDGER_SETTLED && e->tag < floor)
            floor = e->tag;
    }
    while (l->count > 0) {
        struct ledger_entry *e = &l->entries[l->order[l->head]];
        if (e->state == LEDGER_WAITING && e->nacks > 0 && turns-- > 0) {
            pop_head(l, true); /* waits for its retry: to the back */
            continue;
        }
        if (e->state != LEDGER_DONE && e->state != LEDGER_SETTLED)
            break;
        /* Moved back, a job in work can have a lower tag than finished
         * ones ahead of it: a multiple ack must not cover it. */
        if (e->state == LEDGER_DONE && !e->acked) {
            if (e->tag < floor) {
                if (e->tag > *multiple_tag)
                    *multiple_tag = e->tag;
            } else
                singles[(*n_singles)++] = e->tag;
        }
        l->in_state[e->suspect][e->state]--;
        pop_head(l, false);
    }
    if (ledger_in_state(l, LEDGER_DONE) == 0)
        return;
    for (unsigned i = 0; i < l->count; i++) {
        struct ledger_entry *e = &l->entries[ledger_slot(l, i)];
        if (e->state != LEDGER_DONE)
            continue;
        /* One moved back and finished may be behind the head yet below
         * the multiple ack, which acks it: acked again, its tag would be
         * unknown to the broker, and the channel closed. */
        if (!e->acked && e->tag > *multiple_tag)
            singles[(*n_singles)++] = e->tag;
        set_state(l, e, LEDGER_SETTLED);
    }
}

bool ledger_consistent(const struct ledger *l)
{
    unsigned counted[2][LEDGER_N_STATES] = {{0}};

    for (unsigned i = 0; i < l->count; i++) {
        const struct ledger_entry *e = &l->entries[ledger_slot(l, i)];
        counted[e->suspect][e->state]++;
    }
    return l->count + l->n_free == l->cap && memcmp(counted, l->in_state, sizeof counted) == 0;
}
