/* greet-worker: consumes greet jobs, replies, acks after the broker
 * confirmed the reply.  Parse config, set up signals, run the loop. */
#include "config.h"
#include "log.h"
#include "signals.h"
#include "worker.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;
static int wake_pipe[2] = {-1, -1};

/* First signal: drain and exit.  Second: exit now; the broker redelivers
 * whatever was unacked. */
static void on_signal(int signo)
{
    (void)signo;
    if (stop_requested)
        _exit(EXIT_FAILURE);
    stop_requested = 1;
    if (wake_pipe[1] >= 0) {
        ssize_t ignored = write(wake_pipe[1], "s", 1);
        (void)ignored;
    }
}

/* The handler's self-pipe: poll(2) wakes the moment a signal comes. */
static int setup_wake_pipe(void)
{
    if (pipe(wake_pipe) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(wake_pipe[i], F_SETFL, O_NONBLOCK);
        fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct worker_stats stats = {0};
    enum log_level level = LOG_INFO;
    int status =
        config_startup(&cfg, PROGRAM_WORKER, "greet-worker",
                       "Consume greet jobs from RabbitMQ, read preferences from PostgreSQL, "
                       "publish replies.",
                       argc, argv);

    if (status >= 0)
        return status;
    log_level_parse(cfg.log_level, &level);
    log_init("greet-worker", level);
    if (setup_wake_pipe() != 0) {
        fprintf(stderr, "greet-worker: cannot set up signal handling\n");
        config_free(&cfg);
        return EXIT_FAILURE;
    }
    signals_install(on_signal);
    config_log_effective(&cfg);
    status = worker_run(&cfg, &stop_requested, wake_pipe[0], &stats);
    config_free(&cfg);
    return status;
}
