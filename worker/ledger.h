/* ledger.h - the jobs a worker holds, and every decision about them (pure).
 *
 * One entry per delivery in hand, in delivery order, each in exactly one
 * state:
 *
 *   SUSPECT   redelivered: held undecoded until it can run alone
 *   WAITING   valid, preferences not read yet
 *   LOOKUP    part of the database lookup in flight
 *   PUBLISHED its reply (or error reply and dead copy) published, confirms
 *             pending
 *   DONE      everything it published is confirmed: ready to ack
 *   SETTLED   acked (or returned) on its own, behind an unfinished entry
 *
 * The event loop reports events (a delivery, a lookup started or failed,
 * a publish, a confirm, a lost broker) and asks questions (what to look
 * up next, which suspect to run, what to ack, whether to take more
 * deliveries); the answers come from the entries' states alone.  The
 * per-state counts are kept by the one function that changes a state, so
 * they cannot drift from the entries.
 *
 * A suspect is the crash-loop defence: a job that came back may be the
 * one that killed a worker.  It runs alone -- nothing else in work, the
 * acks of everything before it written and proven by a round trip -- so
 * that if it crashes this worker too, no innocent job goes back with it.
 * "A suspect is running" is a fact about the entries (a suspect in
 * WAITING, LOOKUP or PUBLISHED), never a flag that could outlive it. */
#ifndef GREET_LEDGER_H
#define GREET_LEDGER_H

#include <stdbool.h>
#include <stdint.h>

enum ledger_state {
    LEDGER_SUSPECT,
    LEDGER_WAITING,
    LEDGER_LOOKUP,
    LEDGER_PUBLISHED,
    LEDGER_DONE,
    LEDGER_SETTLED,
    LEDGER_N_STATES,
};

struct ledger_entry {
    uint64_t tag; /* the delivery tag */
    unsigned char state;
    bool suspect;                  /* came redelivered: runs alone */
    unsigned short batch_cap;      /* isolated: the largest lookup it may be in (0: any) */
    bool dead_copy;                /* a dead copy is among its publishes */
    bool must_return;              /* its dead copy was refused: hand it back, do not ack */
    bool acked;                    /* an ack for it is already written (fault injection) */
    unsigned char publishes;       /* unconfirmed publishes */
    unsigned char lookup_failures; /* consecutive failed lookups it was in */
    unsigned char nacks;           /* its replies the broker refused so far */
    double retry_at;               /* refused: not looked up again before (0: any time) */
};

struct ledger {
    struct ledger_entry *entries; /* cap of them, by slot (stable while held) */
    unsigned *order;              /* a ring of cap slots, from head: delivery order */
    unsigned *free_slots;         /* a stack of n_free slots not in order */
    unsigned cap, head, count, n_free;
    /* Entries per [suspect][state], changed only by set_state(). */
    unsigned in_state[2][LEDGER_N_STATES];
};

/* What the loop should do next with the database and the suspects. */
enum ledger_action {
    LEDGER_IDLE,        /* nothing to start now */
    LEDGER_LOOK_UP,     /* look up slots[0..n) together */
    LEDGER_RUN_SUSPECT, /* prove the acks arrived, then decode and run slots[0] */
};

/* After a confirm: what its entry needs now. */
enum ledger_confirm_result {
    LEDGER_PENDING,        /* more confirms to come */
    LEDGER_FINISHED,       /* DONE: to be acked */
    LEDGER_NEED_DEAD_COPY, /* its reply was refused: publish a dead copy */
    LEDGER_NEED_RETURN,    /* its dead copy was refused: hand it back */
    LEDGER_RETRY,          /* its reply was refused: it waits to be answered again */
};

/* A refused reply (basic.nack) that may_retry (one to our own reply
 * queue, where a refusal can pass: a quorum queue electing a leader) is
 * answered again after a wait, up to CONFIRMS_NACK_RETRIES times
 * (confirms.h), before the job gets its dead copy.  Any other refusal is
 * final at once: a job waiting for a retry keeps every job delivered
 * after it from the multiple ack, and a queue of the job's choosing that
 * refuses (full, reject-publish) is no reason to slow the others. */

bool ledger_init(struct ledger *l, unsigned cap);
void ledger_free(struct ledger *l);

/* Events.  Slots are stable indexes into the ring (0..cap), so the
 * caller can keep per-job data in an array beside the ledger. */
int ledger_add(struct ledger *l, uint64_t tag, bool redelivered); /* slot, -1 when full */
void ledger_suspect_started(struct ledger *l, unsigned slot);     /* SUSPECT -> WAITING */
void ledger_lookup_started(struct ledger *l, unsigned slot);      /* WAITING -> LOOKUP */
/* Why a lookup failed, as far as its jobs are concerned. */
enum ledger_failure {
    LEDGER_FAIL_TRANSIENT, /* connection lost, timeout: nothing to do with them */
    LEDGER_FAIL_OTHER,     /* a healthy connection refused it: suspicious if it repeats */
    LEDGER_FAIL_DATA,      /* about the rows themselves (SQLSTATE class 22) */
};
/* Failed lookups a job may be in, on a healthy connection, before it is
 * isolated. */
#define LEDGER_REPEATS 3
/* The lookup failed: its entries wait again.  Entries whose rows are in
 * question (a data error, or LEDGER_REPEATS failures of any other kind on
 * a healthy connection) are isolated: from now on they are looked up
 * apart from the others, in batches of at most half the failed one, so
 * a bad row is cornered by bisection while the other jobs go on.
 * Returns the slot of an entry now known to be bad -- looked up alone and
 * refused for its data -- which the caller answers with a permanent
 * error; -1 when none. */
int ledger_lookup_failed(struct ledger *l, enum ledger_failure why);
void ledger_published(struct ledger *l, unsigned slot, unsigned publishes, bool dead_copy);
enum ledger_confirm_result ledger_confirmed(struct ledger *l, unsigned slot, bool dead_copy,
                                            bool nacked, bool may_retry, double now);
void ledger_mark_acked(struct ledger *l, unsigned slot); /* an early ack (fault injection) */
void ledger_returned(struct ledger *l, unsigned slot);   /* rejected back to the queue */
/* The broker connection is gone, and with it every delivery in hand (the
 * broker requeues them).  Returns how many there were. */
unsigned ledger_clear(struct ledger *l);

/* Questions. */
/* The next database or suspect step (see enum ledger_action) at time now
 * (jobs whose reply was refused wait until their retry_at).  random, in
 * [0, 1), picks among suspects, and between isolated jobs and a batch
 * when both wait.  slots must hold batch_max entries. */
enum ledger_action ledger_next(const struct ledger *l, double now, unsigned batch_max,
                               double random, unsigned *slots, unsigned *n);
/* The earliest retry_at after now of a job waiting on one; 0 if none. */
double ledger_next_retry(const struct ledger *l, double now);
/* The acks to send now, and the entries they settle: the finished run at
 * the head is popped with one multiple-ack (*multiple_tag, 0: none; one
 * that would cover a job still in work is sent as singles instead);
 * a job at the head that waits for a retry of its refused reply moves to
 * the tail, so that it holds up no one;
 * finished entries behind an unfinished one are acked singly
 * (singles[0..*n_singles), at most cap of them) and become SETTLED, so
 * that a crash while the one ahead is in work does not send them back. */
void ledger_take_acks(struct ledger *l, uint64_t *multiple_tag, uint64_t *singles,
                      unsigned *n_singles);
/* Whether new deliveries are welcome: not while a suspect waits or runs. */
bool ledger_wants_deliveries(const struct ledger *l);
/* The slot of the nth entry in delivery order (nth < ledger_count()). */
unsigned ledger_slot(const struct ledger *l, unsigned nth);
const struct ledger_entry *ledger_entry(const struct ledger *l, unsigned slot);
unsigned ledger_count(const struct ledger *l);
unsigned ledger_in_state(const struct ledger *l, enum ledger_state state);
bool ledger_suspect_running(const struct ledger *l);
/* Redelivered entries in hand, whatever their state. */
unsigned ledger_suspects(const struct ledger *l);
/* For tests: the per-state counts agree with the entries. */
bool ledger_consistent(const struct ledger *l);

#endif
