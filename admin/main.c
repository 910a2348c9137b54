/* greet-admin: the operator's commands, one program with subcommands
 * (status, declare, dead list|replay|purge, migrate).  The words that name the
 * subcommand come first; what follows is loaded like any program's
 * configuration (config.h: the environment, then flags).  Parse, check,
 * run one command, report. */
#include "commands.h"
#include "config.h"
#include "db_url.h"
#include "log.h"
#include "mq_url.h"
#include "rows.h"
#include "signals.h"
#include "stdfds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The options beyond the shared ones that a subcommand takes. */
enum takes {
    TAKES_ERROR = 1,
    TAKES_JOB_ID = 2,
    TAKES_LIMIT = 4,
    TAKES_DRY_RUN = 8,
    TAKES_YES = 16,
    TAKES_SAMPLE = 32,
};

static int run_purge(const struct config *cfg, enum rows_format format)
{
    (void)format;
    return cmd_dead_purge(cfg);
}

static const struct subcommand {
    const char *words; /* as typed after greet-admin */
    const char *name;  /* in messages */
    unsigned takes;
    int (*run)(const struct config *cfg, enum rows_format format);
    const char *brief;   /* greet-admin --help */
    const char *summary; /* greet-admin COMMAND --help */
} subcommands[] = {
    {"status", "greet-admin status", 0, cmd_status,
     "the queues' depths and consumers; exit 1 unless the topology is as declared",
     "Each queue's depth and consumer count, and whether the broker's topology is the one the\n"
     "worker declares (the queues exist, with the same arguments).  Exit 1 when it is not."},
    {"declare", "greet-admin declare", 0, cmd_declare,
     "declare the three queues as the programs do; for least-privilege users",
     "Declares the jobs, reply and dead-letter queues with the arguments the programs use\n"
     "(idempotent; exit 1 when one exists with other arguments).  Run it as a broker user that\n"
     "may configure them (greet-admin in deploy/rabbitmq/greet-users.sh) before workers,\n"
     "producers and subscribers whose users may not declare."},
    {"dead list", "greet-admin dead list", TAKES_ERROR | TAKES_JOB_ID | TAKES_LIMIT, cmd_dead_list,
     "the dead jobs and how they died, left in place [--error --job-id --limit]",
     "The dead jobs: job_id, how they died (poison, reply_refused, delivery_limit...), the\n"
     "worker's x-greet-error and x-greet-detail.  Takes --error, --job-id, --limit.  The dead\n"
     "queue is left as it was: the jobs are taken unacked and handed back in their order."},
    {"dead replay", "greet-admin dead replay",
     TAKES_ERROR | TAKES_JOB_ID | TAKES_LIMIT | TAKES_DRY_RUN, cmd_dead_replay,
     "dead jobs back to the jobs queue [--error --job-id --limit --dry-run]",
     "Moves the matching dead jobs back to the jobs queue, body and properties as they were,\n"
     "without the death headers: each is acked on the dead queue only once its copy is\n"
     "confirmed (a crash leaves at most a duplicate).  The others stay where they are.  Takes\n"
     "--error, --job-id, --limit, --dry-run."},
    {"dead purge", "greet-admin dead purge", TAKES_YES, run_purge, "delete every dead job [--yes]",
     "Deletes every dead job, with --yes; without it, says how many would go (exit 2)."},
    {"migrate", "greet-admin migrate", TAKES_SAMPLE, cmd_migrate,
     "apply sql/ to DATABASE_URL, each file once [--sql-dir --sample]",
     "Applies the SQL directory's *.sql files to DATABASE_URL in name order, each once, in a\n"
     "transaction of its own, recorded in greet_schema_migrations; refuses (exit 1) when an\n"
     "applied file changed.  Safe to run from many hosts at once.  DATABASE_URL must be a role\n"
     "that may create tables and roles (the owner of the database), not greet_worker.  Takes\n"
     "--sql-dir (GREET_SQL_DIR), --sample."},
};

#define N_SUBCOMMANDS (sizeof subcommands / sizeof subcommands[0])

static void usage(FILE *out)
{
    fprintf(out, "Usage: greet-admin COMMAND [OPTION]...\n"
                 "Look after the greet queues and database.\n\nCommands:\n");
    for (size_t i = 0; i < N_SUBCOMMANDS; i++)
        fprintf(out, "  %-13s %s\n", subcommands[i].words, subcommands[i].brief);
    fprintf(out, "\n'greet-admin COMMAND --help' describes a command and lists its options.\n"
                 "Rows go to stdout: a table on a terminal, JSON lines otherwise (--format);\n"
                 "a summary line and errors go to stderr.\n"
                 "Exit status: 0 on success, 1 on a runtime failure (or a topology that differs),\n"
                 "2 on bad usage.\n");
}

/* The subcommand named by argv[1] (and argv[2]); *words gets how many
 * arguments name it.  NULL when none does. */
static const struct subcommand *find_subcommand(int argc, char **argv, int *words)
{
    for (size_t i = 0; i < N_SUBCOMMANDS; i++) {
        const char *w = subcommands[i].words, *space = strchr(w, ' ');
        if (space == NULL && strcmp(argv[1], w) == 0) {
            *words = 1;
            return &subcommands[i];
        }
        if (space != NULL && argc > 2 && strncmp(argv[1], w, (size_t)(space - w)) == 0 &&
            argv[1][space - w] == '\0' && strcmp(argv[2], space + 1) == 0) {
            *words = 2;
            return &subcommands[i];
        }
    }
    return NULL;
}

/* An option the subcommand does not take; NULL when all is well. */
static const char *stray_option(const struct subcommand *sub, const struct config *cfg)
{
    if (cfg->error_code && !(sub->takes & TAKES_ERROR))
        return "--error";
    if (cfg->job_id && !(sub->takes & TAKES_JOB_ID))
        return "--job-id";
    if (cfg->limit > 0 && !(sub->takes & TAKES_LIMIT))
        return "--limit";
    if (cfg->dry_run && !(sub->takes & TAKES_DRY_RUN))
        return "--dry-run";
    if (cfg->yes && !(sub->takes & TAKES_YES))
        return "--yes";
    if (cfg->sample && !(sub->takes & TAKES_SAMPLE))
        return "--sample";
    return NULL;
}

static int close_stdout(int status)
{
    if (!stdfds_close_stdout() && status == 0) {
        fprintf(stderr, "greet-admin: writing to stdout: %s\n", strerror(errno));
        return 1;
    }
    return status;
}

int main(int argc, char **argv)
{
    static const struct config_urls urls = {mq_url_list_mask, db_url_mask};
    const struct subcommand *sub;
    enum log_level level = LOG_WARN;
    enum rows_format format;
    struct config cfg;
    const char *stray;
    int words, status;

    if (stdfds_reserve() != 0) {
        fprintf(stderr, "greet-admin: cannot open /dev/null: %s\n", strerror(errno));
        return 1;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return close_stdout(0);
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("greet-admin %s\n", GREET_VERSION);
        return close_stdout(0);
    }
    sub = find_subcommand(argc, argv, &words);
    if (sub == NULL) {
        if (strcmp(argv[1], "dead") == 0)
            fprintf(stderr, "greet-admin dead: expected list, replay or purge%s%s%s\n",
                    argc > 2 ? ", got '" : "", argc > 2 ? argv[2] : "", argc > 2 ? "'" : "");
        else
            fprintf(stderr, "greet-admin: unknown command '%s' (see greet-admin --help)\n",
                    argv[1]);
        return 2;
    }
    /* The last word of the command stands for argv[0]. */
    status = config_startup(&cfg, PROGRAM_ADMIN, &urls, sub->name, sub->summary, argc - words,
                            argv + words);
    if (status >= 0)
        return close_stdout(status);
    if ((stray = stray_option(sub, &cfg)) != NULL) {
        fprintf(stderr, "%s: %s does not apply to this command (see %s --help)\n", sub->name, stray,
                sub->name);
        config_free(&cfg);
        return 2;
    }
    if (!rows_format_parse(cfg.format, isatty(STDOUT_FILENO), &format)) {
        fprintf(stderr, "%s: --format: expected auto, table or json, got '%s'\n", sub->name,
                cfg.format);
        config_free(&cfg);
        return 2;
    }
    /* stdout carries the rows: logs go to stderr. */
    log_level_parse(cfg.log_level, &level); /* checked by config_load */
    log_init("greet-admin", level);
    log_set_fd(STDERR_FILENO);
    config_log_effective(&cfg);
    signals_install(false /* no wake pipe */);
    status = sub->run(&cfg, format);
    config_free(&cfg);
    return close_stdout(status);
}
