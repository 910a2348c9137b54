/* greet-worker: consumes greet jobs, replies, acks after the broker
 * confirmed the reply.  Parse config, set up signals, run the loop. */
#include "config.h"
#include "log.h"
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

static int setup_signals(void)
{
    struct sigaction sa;

    if (pipe(wake_pipe) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        fcntl(wake_pipe[i], F_SETFL, O_NONBLOCK);
        fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC);
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct worker_stats stats = {0};
    char err[512];
    enum log_level level = LOG_INFO;
    int status;

    switch (config_load(&cfg, PROGRAM_WORKER, argc, argv, getenv, err, sizeof err)) {
    case CONFIG_HELP:
        config_usage(
            stdout, PROGRAM_WORKER, "greet-worker",
            "Consume greet jobs from RabbitMQ, read preferences from PostgreSQL, publish replies.");
        config_free(&cfg);
        return EXIT_SUCCESS;
    case CONFIG_VERSION:
        printf("greet-worker %s\n", GREET_VERSION);
        config_free(&cfg);
        return EXIT_SUCCESS;
    case CONFIG_ERROR:
        fprintf(stderr, "greet-worker: %s\n", err);
        config_free(&cfg);
        return 2;
    case CONFIG_OK:
        break;
    }
    log_level_parse(cfg.log_level, &level);
    log_init("greet-worker", level);
    if (setup_signals() != 0) {
        fprintf(stderr, "greet-worker: cannot set up signal handling\n");
        config_free(&cfg);
        return EXIT_FAILURE;
    }
    config_log_effective(&cfg);
    status = worker_run(&cfg, &stop_requested, wake_pipe[0], &stats);
    config_free(&cfg);
    return status;
}
