/* signals.h - the stop signals every program handles the same way:
 * SIGTERM and SIGINT call on_stop (which only sets a flag, or writes a
 * byte to a self-pipe); SIGPIPE is ignored, write errors are reported. */
#ifndef GREET_SIGNALS_H
#define GREET_SIGNALS_H

void signals_install(void (*on_stop)(int signo));

#endif
