/* greet-producer: enqueue greet jobs.  Parse config, run, report. */
#include "config.h"
#include "log.h"
#include "producer.h"
#include "signals.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Flags that only make sense together, checked before connecting. */
static const char *check_modes(const struct config *cfg)
{
    bool single_flags = cfg->user_id || cfg->name || cfg->job_id || cfg->correlation_id;

    if (cfg->file && cfg->count > 0)
        return "--file and --count are two ways to choose the jobs; give one";
    if ((cfg->file || cfg->count > 0) && single_flags)
        return "--user-id, --name, --job-id and --correlation-id describe one job; they go without "
               "--file and "
               "--count";
    if (cfg->raw && !cfg->file)
        return "--raw applies to --file";
    if (cfg->rate > 0 && cfg->count == 0)
        return "--rate applies to --count";
    if (cfg->wait && cfg->reply_to)
        return "--wait reads replies on a private queue; it cannot be combined with --reply-to";
    return NULL;
}

int main(int argc, char **argv)
{
    struct config cfg;
    const char *conflict;
    int status = config_startup(
        &cfg, PROGRAM_PRODUCER, "greet-producer",
        "Enqueue greet jobs: one from flags, a JSON-lines --file (or - for stdin), or a\n"
        "synthetic --count load.  Every job is confirmed by the broker before exit 0.\n"
        "Without --file or --count, sends one job and prints its job_id.",
        argc, argv);

    if (status >= 0)
        return status;
    if ((conflict = check_modes(&cfg)) != NULL) {
        fprintf(stderr, "greet-producer: %s\n", conflict);
        config_free(&cfg);
        return 2;
    }
    /* stdout carries replies (--wait) or the job_id: logs go to stderr. */
    log_init("greet-producer", LOG_WARN);
    log_set_fd(STDERR_FILENO);
    signals_install(false /* no wake pipe */);
    status = producer_run(&cfg, &signals_stop);
    config_free(&cfg);
    return status;
}
