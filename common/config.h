/* config.h - settings from the environment and flags (12-factor).
 *
 * One table (config.c) names every setting once: its flag, its environment
 * variable, type, default, range and the programs that take it.  Flags win
 * over the environment, the environment over defaults.  Bad values stop
 * start-up with a message naming the variable and the flag. */
#ifndef GREET_CONFIG_H
#define GREET_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Which program a setting belongs to (a bit mask in the table). */
enum config_program {
    PROGRAM_WORKER = 1,
    PROGRAM_PRODUCER = 2,
    PROGRAM_REPLIES = 4,
};

struct config {
    enum config_program program;

    /* Broker and database. */
    char *amqp_url;
    char *amqp_cacert;
    char *database_url;
    char *jobs_queue;
    char *reply_queue;
    char *dead_queue;
    long long delivery_limit;
    double heartbeat;

    /* Worker. */
    long long prefetch;
    long long batch_max;
    double shutdown_timeout;
    double stats_interval;
    double db_timeout;

    /* Producer and subscriber. */
    long long user_id; /* 0: none given */
    char *name;
    char *job_id;
    char *reply_to;
    char *correlation_id;
    char *file;
    char *id_prefix;
    long long count;
    long long users;
    double rate;
    bool wait;
    bool raw;
    bool dedupe;
    bool envelope;
    bool progress;
    double timeout;

    char *log_level;
};

enum config_status {
    CONFIG_OK,
    CONFIG_HELP,
    CONFIG_VERSION,
    CONFIG_ERROR,
};

/* Loading: environment then argv; err names the variable or flag at fault.
 * environ_get is getenv in production; tests pass their own table. */
typedef char *(*config_getenv_fn)(const char *name);
enum config_status config_load(struct config *cfg, enum config_program program, int argc,
                               char **argv, config_getenv_fn environ_get, char *err, size_t errlen);
void config_free(struct config *cfg);

/* The start of every main(): loads cfg, answers --help and --version on
 * stdout, reports bad usage on stderr.  Returns -1 when the program is to
 * run, else its exit status (0, or 2 for bad usage; cfg is then freed). */
int config_startup(struct config *cfg, enum config_program program, const char *name,
                   const char *summary, int argc, char **argv);

/* Reporting: --help text and the effective settings, secrets masked. */
void config_usage(FILE *out, enum config_program program, const char *name, const char *summary);
void config_log_effective(const struct config *cfg);

/* A connection string with any password replaced by "***": URIs
 * (scheme://user:pass@host, ?password=) and libpq keyword strings
 * (password=secret).  Always NUL-terminates out; cuts when too small. */
void config_mask_url(const char *url, char *out, size_t outlen);

#endif
