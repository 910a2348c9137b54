/* stdfds.h - the standard descriptors of the command-line programs, whose
 * stdout carries data (a job_id, replies).
 *
 * Started with stdout closed (`>&-`), a program would hand descriptor 1
 * to the first file it opens, its broker socket: what it then "printed"
 * would go into the AMQP connection and exit 0.  Reserving the descriptor
 * makes those writes fail, and the failure is reported. */
#ifndef GREET_STDFDS_H
#define GREET_STDFDS_H

#include <stdbool.h>

/* At start, before opening anything: puts /dev/null on each of 0, 1 and
 * 2 that is closed, opened for the other direction, so that using it
 * fails with EBADF.  -1 when that is not possible. */
int stdfds_reserve(void);

/* At exit: flushes and closes stdout.  false, with errno set, when
 * anything written to it was lost. */
bool stdfds_close_stdout(void);

#endif
