/* confirms.h - publisher confirms matched to what was published (pure).
 *
 * In confirm mode the broker numbers a channel's publishes 1, 2, 3... and
 * answers each with basic.ack or basic.nack, one at a time or "multiple"
 * (every publish up to that number).  RabbitMQ's confirms guide says not
 * to count on them arriving in order, and this tracker does not: any
 * publish may be settled before the ones ahead of it.  Each publish
 * carries an owner -- whatever the caller needs back (a job, a slot) --
 * and every settled publish is handed back exactly once, with how it
 * ended.  The worker, the producer and the tools all use this one. */
#ifndef GREET_CONFIRMS_H
#define GREET_CONFIRMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum confirm_outcome {
    CONFIRM_ACKED,  /* the broker has it */
    CONFIRM_NACKED, /* the broker refused it */
    CONFIRM_LOST,   /* the channel died first: nobody knows (confirms_reset) */
};

/* A nack is not always final: a quorum queue whose leader was lost nacks
 * what was in flight until a new leader is elected, and a channel opened
 * on another node just then had every publish to it nacked for 8.5 s in
 * the cluster suite (its idea of the leader was the dead node's).  Whoever
 * published it tries again after confirms_retry_delay(n) s for its n-th
 * nack (0.25 s, doubling), CONFIRMS_NACK_RETRIES times (15.75 s in all)
 * before taking the refusal as final (a queue that rejects every
 * publish). */
#define CONFIRMS_NACK_RETRIES 6
double confirms_retry_delay(unsigned nacks);

typedef void (*confirms_fn)(void *ctx, uint64_t owner, enum confirm_outcome outcome);

struct confirm_entry {
    uint64_t owner;
    bool settled;
};

/* A ring of tracked publishes in sequence order; a settled one stays
 * until everything ahead of it is settled too. */
struct confirms {
    struct confirm_entry *ring;
    size_t cap, head, count;
    uint64_t first_seq; /* the sequence number of ring[head] */
};

bool confirms_init(struct confirms *c, size_t cap);
void confirms_free(struct confirms *c);

/* Records publish number seq, which must be the next one of the channel
 * (1 after a reset).  false when full or out of sequence. */
bool confirms_track(struct confirms *c, uint64_t seq, uint64_t owner);

/* A basic.ack or basic.nack: calls fn for each publish it settles, in
 * sequence order.  Numbers already settled or never tracked are ignored.
 * Returns how many it settled. */
size_t confirms_settle(struct confirms *c, uint64_t seq, bool multiple, bool nacked, confirms_fn fn,
                       void *ctx);

/* The channel is gone: fn(CONFIRM_LOST) for each unsettled publish, then
 * empty, numbering from 1 again for the next channel. */
void confirms_reset(struct confirms *c, confirms_fn fn, void *ctx);

/* Tracked publishes (settled ones still behind an unsettled one count):
 * what bounds a publishing window.  0 means everything was settled. */
size_t confirms_in_flight(const struct confirms *c);
bool confirms_full(const struct confirms *c);

#endif
