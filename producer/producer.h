/* producer.h - enqueue greet jobs: one from flags, many from a JSON-lines
 * file or stdin, or a synthetic load; every publish confirmed by the
 * broker (pipelined); with --wait, read the replies on a private queue. */
#ifndef GREET_PRODUCER_H
#define GREET_PRODUCER_H

#include "config.h"

#include <signal.h>

/* Returns the exit status: 0 all confirmed (and, with --wait, all
 * answered ok), 1 otherwise, 2 for bad input. */
int producer_run(const struct config *cfg, volatile sig_atomic_t *stop);

#endif
