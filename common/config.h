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

/* Checks a URL setting and writes it with its secrets masked: false, with
 * err filled (never with the secret), when it cannot be parsed.  main()
 * passes mq_url_mask() and db_url_mask() in, so config.c itself needs
 * neither librabbitmq nor libpq, and a program without a database does not
 * link libpq. */
typedef bool (*config_url_fn)(const char *url, char *out, size_t outlen, char *err, size_t errlen);

struct config_urls {
    config_url_fn amqp;     /* AMQP_URL */
    config_url_fn database; /* DATABASE_URL; NULL in programs that take none */
};

/* Which program a setting belongs to (a bit mask in the table). */
enum config_program {
    PROGRAM_WORKER = 1,
    PROGRAM_PRODUCER = 2,
    PROGRAM_REPLIES = 4,
    PROGRAM_ADMIN = 8,
};

struct config {
    enum config_program program;
    struct config_urls urls;

    /* Broker and database. */
    char *amqp_url;
    char *amqp_cacert;
    char *amqp_cert; /* client certificate (amqps://); NULL: none */
    char *amqp_key;  /* its private key */
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
    char *http_addr; /* "": no metrics and health port */

    /* Authenticated jobs (token.h).  jwt_alg, jwt_issuer and jwt_audience
     * are the worker's GREET_JWT_* and the producer's --jwt-* alike. */
    char *auth;         /* "none" or "jwt" */
    char *jwt_key_file; /* worker: the HMAC secret or PEM public key */
    char *jwt_alg;
    char *jwt_issuer;   /* NULL: not checked (worker), not set (producer) */
    char *jwt_audience; /* likewise */
    double jwt_leeway;
    char *jwt_key; /* producer: the HMAC secret or PEM private key; NULL: no tokens */
    long long jwt_ttl;

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

    /* greet-admin (job_id above: dead replay --job-id). */
    char *error_code; /* --error: dead jobs of this error or death */
    long long limit;  /* --limit: 0 for none */
    bool dry_run;
    bool yes;
    bool sample;
    char *sql_dir; /* NULL: the installed share dir, else ./sql */
    char *format;  /* auto, table or json */

    char *log_level;
};

enum config_status {
    CONFIG_OK,
    CONFIG_HELP,
    CONFIG_VERSION,
    CONFIG_ERROR,
};

/* Loading: environment then argv; err names the variable or flag at fault.
 * environ_get is getenv in production; tests pass their own table.  urls
 * checks the URL settings the program takes, and is kept in cfg. */
typedef char *(*config_getenv_fn)(const char *name);
enum config_status config_load(struct config *cfg, enum config_program program,
                               const struct config_urls *urls, int argc, char **argv,
                               config_getenv_fn environ_get, char *err, size_t errlen);
void config_free(struct config *cfg);

/* The start of every main(): loads cfg, answers --help and --version on
 * stdout, reports bad usage on stderr.  Returns -1 when the program is to
 * run, else its exit status (0, or 2 for bad usage; cfg is then freed). */
int config_startup(struct config *cfg, enum config_program program, const struct config_urls *urls,
                   const char *name, const char *summary, int argc, char **argv);

/* Reporting: --help text and the effective settings, secrets masked. */
void config_usage(FILE *out, enum config_program program, const char *name, const char *summary);
void config_log_effective(const struct config *cfg);

#endif
