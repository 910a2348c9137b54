/* signals.h - the stop signals, handled the same way by every program.
 *
 * SIGTERM or SIGINT sets signals_stop; the handler does nothing else but,
 * when a wake pipe was asked for, write one byte to it so that a poll(2)
 * on signals_wake_fd() returns at once.  A second signal exits at once
 * with status 1: the broker redelivers whatever was unacked.  SIGPIPE is
 * ignored; write errors are reported where they happen. */
#ifndef GREET_SIGNALS_H
#define GREET_SIGNALS_H

#include <signal.h>
#include <stdbool.h>

extern volatile sig_atomic_t signals_stop;

/* 0, or -1 when the wake pipe cannot be made. */
int signals_install(bool wake_pipe);
/* The wake pipe's read end (non-blocking), -1 without one. */
int signals_wake_fd(void);

#endif
