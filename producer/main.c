/* greet-producer: enqueue greet jobs.  Parse config, run, report. */
#include "config.h"
#include "log.h"
#include "mq_url.h"
#include "producer.h"
#include "signals.h"
#include "stdfds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    if (cfg->raw && cfg->jwt_key)
        return "--raw sends each line as it is: it signs nothing, so it takes no --jwt-key";
    if (cfg->rate > 0 && cfg->count == 0)
        return "--rate applies to --count";
    if (cfg->wait && cfg->reply_to)
        return "--wait reads replies on a private queue; it cannot be combined with --reply-to";
    return NULL;
}

/* What stdout carried (the job_id, the replies, --help) is the result:
 * losing it fails the run.  A run that failed already said why. */
static int close_stdout(int status)
{
    if (!stdfds_close_stdout() && status == 0) {
        fprintf(stderr, "greet-producer: writing to stdout: %s\n", strerror(errno));
        return 1;
    }
    return status;
}

int main(int argc, char **argv)
{
    static const struct config_urls urls = {mq_url_list_mask, NULL /* no database */};
    struct config cfg;
    const char *conflict;
    enum log_level level = LOG_WARN;
    int status;

    /* Before the broker socket is opened: it must never become stdout. */
    if (stdfds_reserve() != 0) {
        fprintf(stderr, "greet-producer: cannot open /dev/null: %s\n", strerror(errno));
        return 1;
    }
    status = config_startup(
        &cfg, PROGRAM_PRODUCER, &urls, "greet-producer",
        "Enqueue greet jobs: one from flags, a JSON-lines --file (or - for stdin), or a\n"
        "synthetic --count load.  Every job is confirmed by the broker before exit 0.\n"
        "Without --file or --count, sends one job and prints its job_id.",
        argc, argv);

    if (status >= 0)
        return close_stdout(status);
    if ((conflict = check_modes(&cfg)) != NULL) {
        fprintf(stderr, "greet-producer: %s\n", conflict);
        config_free(&cfg);
        return 2;
    }
    /* stdout carries replies (--wait) or the job_id: logs go to stderr. */
    log_level_parse(cfg.log_level, &level); /* checked by config_load */
    log_init("greet-producer", level);
    log_set_fd(STDERR_FILENO);
    config_log_effective(&cfg);
    signals_install(false /* no wake pipe */);
    status = producer_run(&cfg, &signals_stop);
    config_free(&cfg);
    return close_stdout(status);
}
