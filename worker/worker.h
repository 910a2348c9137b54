/* worker.h - the worker's event loop: consume, look up, reply, confirm, ack.
 *
 * One process owns one broker connection and one database connection and
 * multiplexes both, the signal pipe and its timers in one poll(2) loop.
 * The jobs in hand and every decision about them live in the ledger
 * (ledger.h):
 *
 *   delivered -> (valid) waiting for lookup -> in lookup -> reply published
 *             -> (poison) error reply + dead copy published
 *             -> (redelivered) held as a suspect until it can run alone
 *   published -> every publish confirmed -> done -> acked (multiple, in order)
 *
 * A job is acked only once the broker confirmed everything it published
 * for it.  Losing the broker drops the jobs in hand (the broker redelivers
 * them); losing the database holds them and stops consuming until it is
 * back. */
#ifndef GREET_WORKER_H
#define GREET_WORKER_H

#include "config.h"
#include "token.h"

#include <signal.h>
#include <stdbool.h>

struct worker_stats {
    unsigned long long jobs_ok;
    unsigned long long jobs_failed;       /* poison: error reply + dead copy */
    unsigned long long jobs_unauthorized; /* of them, refused for their token */
    unsigned long long replies_unroutable;
    unsigned long long replies_refused; /* nacked every time: the job went to the dead queue */
    unsigned long long replies_retried; /* nacked, to be answered again (ledger.h) */
    unsigned long long jobs_returned;   /* even the dead copy was refused: requeued */
    unsigned long long lookups;
    unsigned long long lookup_failures;
    unsigned long long db_connects;
    unsigned long long consumer_cancels; /* by the broker: queue deleted, node lost */
    unsigned long long returned_at_shutdown;
};

/* Runs until a shutdown request is finished.  stop is set by the signal
 * handler (1 = drain and exit); wake_fd is the read end of a self-pipe the
 * handler writes to, so poll(2) wakes at once.  verifier checks every
 * job's token (GREET_AUTH=jwt), or is NULL.  Returns the exit status. */
int worker_run(const struct config *cfg, const struct token_verifier *verifier,
               volatile sig_atomic_t *stop, int wake_fd, struct worker_stats *stats);

#endif
