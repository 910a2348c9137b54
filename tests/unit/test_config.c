/* test_config.c - settings from environment and flags.  The URL checkers
 * have their own tests (test_mq_url.c, test_db_url.c). */
#include "config.h"
#include "db_url.h"
#include "mq_url.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct config_urls urls = {mq_url_list_mask, db_url_mask};

/* The environment a case runs in: "NAME=value" strings. */
static const char *const *fake_environ;

static char *fake_getenv(const char *name)
{
    size_t len = strlen(name);

    for (const char *const *e = fake_environ; e && *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return (char *)*e + len + 1;
    return NULL;
}

struct config_case {
    const char *env[6];
    const char *argv[8];
    enum config_program program;
    enum config_status status;
    const char *error_has; /* for CONFIG_ERROR: a substring of err */
};

static const struct config_case cases[] = {
    /* Defaults. */
    {{NULL}, {"w", NULL}, PROGRAM_WORKER, CONFIG_OK, NULL},
    /* Environment and flags, flags winning. */
    {{"GREET_PREFETCH=50", NULL}, {"w", NULL}, PROGRAM_WORKER, CONFIG_OK, NULL},
    {{"GREET_PREFETCH=50", NULL}, {"w", "--prefetch", "7", NULL}, PROGRAM_WORKER, CONFIG_OK, NULL},
    {{NULL}, {"w", "--prefetch=9", NULL}, PROGRAM_WORKER, CONFIG_OK, NULL},
    {{NULL}, {"w", "--help", NULL}, PROGRAM_WORKER, CONFIG_HELP, NULL},
    {{NULL}, {"w", "--version", NULL}, PROGRAM_WORKER, CONFIG_VERSION, NULL},
    /* Bad values name the variable. */
    {{"GREET_PREFETCH=abc", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "GREET_PREFETCH (--prefetch)"},
    {{"GREET_PREFETCH=0", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "from 1 to 65535, got '0'"},
    {{"GREET_PREFETCH=70000", NULL}, {"w", NULL}, PROGRAM_WORKER, CONFIG_ERROR, "GREET_PREFETCH"},
    {{"GREET_PREFETCH=5x", NULL}, {"w", NULL}, PROGRAM_WORKER, CONFIG_ERROR, "GREET_PREFETCH"},
    {{"GREET_SHUTDOWN_TIMEOUT=-1", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "GREET_SHUTDOWN_TIMEOUT"},
    {{"GREET_HEARTBEAT=nan", NULL}, {"w", NULL}, PROGRAM_WORKER, CONFIG_ERROR, "GREET_HEARTBEAT"},
    {{"AMQP_URL=http://x", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "AMQP_URL (--amqp-url)"},
    {{"AMQP_URL=amqp://u:secret@h:notaport/", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "AMQP_URL (--amqp-url): librabbitmq cannot parse 'amqp://***'"},
    {{NULL},
     {"r", "--amqp-url", "amqp://u:secret@x@h/", NULL},
     PROGRAM_REPLIES,
     CONFIG_ERROR,
     "AMQP_URL (--amqp-url)"},
    {{"DATABASE_URL=host=x port", NULL}, {"w", NULL}, PROGRAM_WORKER, CONFIG_ERROR, "DATABASE_URL"},
    {{"DATABASE_URL=host=x password=secret port", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "DATABASE_URL (--database-url): missing \"=\" after \"port\""},
    {{NULL},
     {"w", "--database-url", "postgresql://u:secret@[::1", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "DATABASE_URL (--database-url)"},
    {{"GREET_JOBS_QUEUE=greet.replies", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "different queues"},
    {{"GREET_DEAD_QUEUE=amq.x", NULL}, {"w", NULL}, PROGRAM_WORKER, CONFIG_ERROR, "reserved"},
    {{"GREET_LOG_LEVEL=loud", NULL}, {"w", NULL}, PROGRAM_WORKER, CONFIG_ERROR, "GREET_LOG_LEVEL"},
    /* Flags. */
    {{NULL}, {"w", "--nope", NULL}, PROGRAM_WORKER, CONFIG_ERROR, "unknown option '--nope'"},
    {{NULL}, {"w", "stray", NULL}, PROGRAM_WORKER, CONFIG_ERROR, "unexpected argument 'stray'"},
    {{NULL}, {"w", "--prefetch", NULL}, PROGRAM_WORKER, CONFIG_ERROR, "needs a value"},
    /* Each program takes only its own flags. */
    {{NULL}, {"p", "--prefetch", "5", NULL}, PROGRAM_PRODUCER, CONFIG_ERROR, "unknown option"},
    {{NULL}, {"w", "--count", "5", NULL}, PROGRAM_WORKER, CONFIG_ERROR, "unknown option"},
    {{NULL}, {"p", "--count", "5", "--wait", NULL}, PROGRAM_PRODUCER, CONFIG_OK, NULL},
    /* Integer bounds are printed exactly, LLONG_MAX included. */
    {{NULL},
     {"p", "--user-id", "0", NULL},
     PROGRAM_PRODUCER,
     CONFIG_ERROR,
     "--user-id: expected a whole number from 1 to 9223372036854775807, got '0'"},
    {{NULL}, {"p", "--user-id", "9223372036854775807", NULL}, PROGRAM_PRODUCER, CONFIG_OK, NULL},
    {{NULL},
     {"p", "--user-id", "9223372036854775808", NULL},
     PROGRAM_PRODUCER,
     CONFIG_ERROR,
     "from 1 to 9223372036854775807, got '9223372036854775808'"},
    /* The producer's --count 0 would be a load of nothing: bad usage; the
     * subscriber's means "no limit". */
    {{NULL},
     {"p", "--count", "0", NULL},
     PROGRAM_PRODUCER,
     CONFIG_ERROR,
     "--count: expected a whole number from 1 to 100000000, got '0'"},
    {{NULL}, {"r", "--count", "0", NULL}, PROGRAM_REPLIES, CONFIG_OK, NULL},
    {{NULL}, {"p", "--log-level", "debug", NULL}, PROGRAM_PRODUCER, CONFIG_OK, NULL},
    {{NULL}, {"r", "--log-level", "loud", NULL}, PROGRAM_REPLIES, CONFIG_ERROR, "GREET_LOG_LEVEL"},
    {{NULL},
     {"r", "--dedupe=maybe", NULL},
     PROGRAM_REPLIES,
     CONFIG_ERROR,
     "expected true or false"},
    /* The worker does not read DATABASE_URL for other programs. */
    {{"DATABASE_URL=host=x port", NULL}, {"r", NULL}, PROGRAM_REPLIES, CONFIG_OK, NULL},

    /* TLS files: /dev/null stands for a readable file (only the
     * connection reads what is in it). */
    {{"AMQP_URL=amqps://h/", "AMQP_CACERT=/dev/null", "AMQP_CERT=/dev/null", "AMQP_KEY=/dev/null",
      NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_OK,
     NULL},
    {{"AMQP_URL=amqps://h/", "AMQP_CACERT=/dev/null", NULL},
     {"p", "--amqp-cert", "/dev/null", "--amqp-key=/dev/null", NULL},
     PROGRAM_PRODUCER,
     CONFIG_OK,
     NULL},
    /* A certificate goes with its key, and the other way round. */
    {{"AMQP_URL=amqps://h/", "AMQP_CACERT=/dev/null", "AMQP_CERT=/dev/null", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "AMQP_CERT (--amqp-cert) is set but AMQP_KEY (--amqp-key) is not"},
    {{"AMQP_URL=amqps://h/", "AMQP_CACERT=/dev/null", NULL},
     {"r", "--amqp-key", "/dev/null", NULL},
     PROGRAM_REPLIES,
     CONFIG_ERROR,
     "AMQP_KEY (--amqp-key) is set but AMQP_CERT (--amqp-cert) is not"},
    {{"AMQP_URL=amqps://h/", "AMQP_CACERT=/dev/null", "AMQP_CERT=/dev/null", "AMQP_KEY=/dev/null",
      NULL},
     {"w", "--amqp-cert=", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "AMQP_KEY (--amqp-key) is set but AMQP_CERT (--amqp-cert) is not"},
    /* Only over TLS, every broker of a list included; no password shown. */
    {{"AMQP_URL=amqp://u:secret@h/", "AMQP_CERT=/dev/null", "AMQP_KEY=/dev/null", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "AMQP_CERT (--amqp-cert): a client certificate needs TLS, but AMQP_URL is amqp://"},
    {{"AMQP_URL=amqps://u:secret@h1/, amqp://u:secret@h2/", "AMQP_CACERT=/dev/null",
      "AMQP_CERT=/dev/null", "AMQP_KEY=/dev/null", NULL},
     {"p", NULL},
     PROGRAM_PRODUCER,
     CONFIG_ERROR,
     "AMQP_URL entry 2 of 2 is amqp://, not amqps://"},
    {{"AMQP_URL=amqps://h1/; amqps://h2/", "AMQP_CACERT=/dev/null", "AMQP_CERT=/dev/null",
      "AMQP_KEY=/dev/null", NULL},
     {"a", NULL},
     PROGRAM_ADMIN,
     CONFIG_OK,
     NULL},
    /* Unreadable files are named, with the reason. */
    {{"AMQP_URL=amqps://h/", "AMQP_CACERT=/dev/null", "AMQP_CERT=/nonexistent/greet.pem",
      "AMQP_KEY=/dev/null", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "AMQP_CERT (--amqp-cert): cannot read '/nonexistent/greet.pem': No such file or directory"},
    {{"AMQP_URL=amqps://h/", "AMQP_CACERT=/dev/null", "AMQP_CERT=/dev/null", "AMQP_KEY=/", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "AMQP_KEY (--amqp-key): cannot read '/': Is a directory"},
    {{"AMQP_URL=amqps://h/", NULL},
     {"r", "--amqp-cacert", "/nonexistent/ca.pem", NULL},
     PROGRAM_REPLIES,
     CONFIG_ERROR,
     "AMQP_CACERT (--amqp-cacert): cannot read '/nonexistent/ca.pem': No such file or directory"},
    /* Without amqps:// the CA bundle is not read, so not needed. */
    {{"AMQP_CACERT=/nonexistent/ca.pem", NULL}, {"w", NULL}, PROGRAM_WORKER, CONFIG_OK, NULL},

    /* Authenticated jobs.  /dev/null stands for a readable key file: what
     * it holds is checked against the alg by the worker's main(). */
    {{"GREET_AUTH=jwt", "GREET_JWT_KEY_FILE=/dev/null", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_OK,
     NULL},
    {{NULL},
     {"w", "--auth", "jwt", "--jwt-key-file", "/dev/null", "--jwt-alg=ES256", "--jwt-leeway=5",
      NULL},
     PROGRAM_WORKER,
     CONFIG_OK,
     NULL},
    {{"GREET_AUTH=basic", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "GREET_AUTH (--auth): expected none or jwt, got 'basic'"},
    {{"GREET_AUTH=jwt", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "GREET_AUTH=jwt needs GREET_JWT_KEY_FILE (--jwt-key-file)"},
    {{"GREET_AUTH=jwt", "GREET_JWT_KEY_FILE=/nonexistent/jwt.key", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "GREET_JWT_KEY_FILE (--jwt-key-file): cannot read '/nonexistent/jwt.key': No such file or "
     "directory"},
    {{"GREET_AUTH=jwt", "GREET_JWT_KEY_FILE=/", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "GREET_JWT_KEY_FILE (--jwt-key-file): cannot read '/': Is a directory"},
    {{"GREET_JWT_KEY_FILE=/dev/null", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "GREET_JWT_KEY_FILE (--jwt-key-file) is set but GREET_AUTH is none"},
    {{"GREET_AUTH=jwt", "GREET_JWT_KEY_FILE=/dev/null", "GREET_JWT_ALG=EdDSA", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "GREET_JWT_ALG (--jwt-alg): 'EdDSA': EdDSA is not supported by libjwt 1.10"},
    {{"GREET_AUTH=jwt", "GREET_JWT_KEY_FILE=/dev/null", "GREET_JWT_ALG=RS257", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "GREET_JWT_ALG (--jwt-alg): 'RS257': expected one of HS256, HS384, HS512, RS256"},
    {{"GREET_AUTH=jwt", "GREET_JWT_KEY_FILE=/dev/null", NULL},
     {"w", "--jwt-alg", "hs256", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "'hs256': expected one of"},
    {{"GREET_AUTH=jwt", "GREET_JWT_KEY_FILE=/dev/null", "GREET_JWT_ALG=none", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "'none': none would take unsigned tokens"},
    {{"GREET_AUTH=jwt", "GREET_JWT_KEY_FILE=/dev/null", "GREET_JWT_ALG=S256", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "expected one of"},
    {{"GREET_AUTH=jwt", "GREET_JWT_KEY_FILE=/dev/null", "GREET_JWT_LEEWAY=-1", NULL},
     {"w", NULL},
     PROGRAM_WORKER,
     CONFIG_ERROR,
     "GREET_JWT_LEEWAY (--jwt-leeway)"},
    /* The producer's signing flags. */
    {{NULL},
     {"p", "--jwt-key", "/dev/null", "--jwt-ttl", "60", NULL},
     PROGRAM_PRODUCER,
     CONFIG_OK,
     NULL},
    {{NULL},
     {"p", "--jwt-key", "/nonexistent/jwt.pem", NULL},
     PROGRAM_PRODUCER,
     CONFIG_ERROR,
     "--jwt-key: cannot read '/nonexistent/jwt.pem'"},
    {{NULL},
     {"p", "--jwt-key", "/dev/null", "--jwt-alg", "EdDSA", NULL},
     PROGRAM_PRODUCER,
     CONFIG_ERROR,
     "--jwt-alg: 'EdDSA': EdDSA is not supported"},
    {{NULL},
     {"p", "--jwt-audience", "greet", NULL},
     PROGRAM_PRODUCER,
     CONFIG_ERROR,
     "--jwt-issuer and --jwt-audience apply to --jwt-key"},
    {{NULL},
     {"p", "--jwt-key", "/dev/null", "--jwt-ttl", "0", NULL},
     PROGRAM_PRODUCER,
     CONFIG_ERROR,
     "--jwt-ttl: expected a whole number from 1 to 31536000, got '0'"},
    /* A worker's GREET_JWT_* never make a producer sign, nor stop it. */
    {{"GREET_JWT_ALG=EdDSA", "GREET_AUTH=jwt", "GREET_JWT_ISSUER=x", NULL},
     {"p", NULL},
     PROGRAM_PRODUCER,
     CONFIG_OK,
     NULL},
    {{NULL}, {"w", "--jwt-key", "/dev/null", NULL}, PROGRAM_WORKER, CONFIG_ERROR, "unknown option"},
    {{NULL}, {"r", "--auth", "jwt", NULL}, PROGRAM_REPLIES, CONFIG_ERROR, "unknown option"},
};

START_TEST(test_load)
{
    const struct config_case *c = &cases[_i];
    struct config cfg;
    char err[512] = "";
    int argc = 0;
    enum config_status status;

    while (c->argv[argc])
        argc++;
    fake_environ = c->env;
    status =
        config_load(&cfg, c->program, &urls, argc, (char **)c->argv, fake_getenv, err, sizeof err);
    ck_assert_msg(status == c->status, "case %d: status %d, want %d (%s)", _i, status, c->status,
                  err);
    ck_assert_msg(strstr(err, "secret") == NULL, "case %d: error leaks '%s'", _i, err);
    if (c->error_has)
        ck_assert_msg(strstr(err, c->error_has) != NULL, "case %d: '%s' lacks '%s'", _i, err,
                      c->error_has);
    config_free(&cfg);
}
END_TEST

START_TEST(test_values_and_precedence)
{
    static const char *const env[] = {"GREET_PREFETCH=50", "GREET_JOBS_QUEUE=q.jobs",
                                      "GREET_DB_TIMEOUT=0.5", NULL};
    char *argv[] = {"w", "--prefetch", "7", NULL};
    struct config cfg;
    char err[256];

    fake_environ = env;
    ck_assert_int_eq(
        config_load(&cfg, PROGRAM_WORKER, &urls, 3, argv, fake_getenv, err, sizeof err), CONFIG_OK);
    ck_assert_int_eq(cfg.prefetch, 7);
    ck_assert_str_eq(cfg.jobs_queue, "q.jobs");
    ck_assert_str_eq(cfg.reply_queue, "greet.replies");
    ck_assert_str_eq(cfg.dead_queue, "greet.dead");
    ck_assert_str_eq(cfg.amqp_url, "amqp://guest:guest@localhost:5672/");
    ck_assert_str_eq(cfg.database_url, "postgresql:///greet");
    ck_assert_int_eq(cfg.delivery_limit, 20);
    ck_assert(cfg.db_timeout > 0.49 && cfg.db_timeout < 0.51);
    config_free(&cfg);
    ck_assert_ptr_null(cfg.amqp_url);
}
END_TEST

/* The token settings as loaded, and their defaults. */
START_TEST(test_auth_values)
{
    static const char *const env[] = {"GREET_AUTH=jwt", "GREET_JWT_KEY_FILE=/dev/null",
                                      "GREET_JWT_ISSUER=iss", "GREET_JWT_AUDIENCE=aud", NULL};
    char *worker_argv[] = {"w", "--jwt-alg", "RS256", NULL};
    char *producer_argv[] = {"p", NULL};
    struct config cfg;
    char err[256];

    fake_environ = NULL;
    ck_assert_int_eq(
        config_load(&cfg, PROGRAM_WORKER, &urls, 1, worker_argv, fake_getenv, err, sizeof err),
        CONFIG_OK);
    ck_assert_str_eq(cfg.auth, "none");
    ck_assert_str_eq(cfg.jwt_alg, "HS256");
    ck_assert_ptr_null(cfg.jwt_key_file);
    ck_assert(cfg.jwt_leeway > 29.9 && cfg.jwt_leeway < 30.1);
    config_free(&cfg);
    fake_environ = env;
    ck_assert_int_eq(
        config_load(&cfg, PROGRAM_WORKER, &urls, 3, worker_argv, fake_getenv, err, sizeof err),
        CONFIG_OK);
    ck_assert_str_eq(cfg.auth, "jwt");
    ck_assert_str_eq(cfg.jwt_key_file, "/dev/null");
    ck_assert_str_eq(cfg.jwt_alg, "RS256");
    ck_assert_str_eq(cfg.jwt_issuer, "iss");
    ck_assert_str_eq(cfg.jwt_audience, "aud");
    config_free(&cfg);
    ck_assert_int_eq(
        config_load(&cfg, PROGRAM_PRODUCER, &urls, 1, producer_argv, fake_getenv, err, sizeof err),
        CONFIG_OK);
    ck_assert_ptr_null(cfg.jwt_key);
    ck_assert_ptr_null(cfg.jwt_issuer);
    ck_assert_str_eq(cfg.jwt_alg, "HS256");
    ck_assert_int_eq(cfg.jwt_ttl, 3600);
    config_free(&cfg);
}
END_TEST

/* The TLS files as loaded: flags over the environment, unset by default. */
START_TEST(test_tls_values)
{
    static const char *const env[] = {"AMQP_URL=amqps://h/", "AMQP_CACERT=/dev/null",
                                      "AMQP_CERT=/nonexistent/env.pem", "AMQP_KEY=/dev/null", NULL};
    char *argv[] = {"w", "--amqp-cert", "/dev/null", NULL};
    struct config cfg;
    char err[256];

    fake_environ = NULL;
    ck_assert_int_eq(
        config_load(&cfg, PROGRAM_WORKER, &urls, 1, argv, fake_getenv, err, sizeof err), CONFIG_OK);
    ck_assert_ptr_null(cfg.amqp_cert);
    ck_assert_ptr_null(cfg.amqp_key);
    ck_assert_str_eq(cfg.amqp_cacert, "/etc/ssl/certs/ca-certificates.crt");
    config_free(&cfg);
    fake_environ = env;
    ck_assert_int_eq(
        config_load(&cfg, PROGRAM_WORKER, &urls, 3, argv, fake_getenv, err, sizeof err), CONFIG_OK);
    ck_assert_str_eq(cfg.amqp_cert, "/dev/null");
    ck_assert_str_eq(cfg.amqp_key, "/dev/null");
    ck_assert_str_eq(cfg.amqp_cacert, "/dev/null");
    config_free(&cfg);
    ck_assert_ptr_null(cfg.amqp_cert);
}
END_TEST

/* A named pipe as a TLS file: refused at once with its name, where
 * opening it would have waited for a writer, silently, for ever. */
START_TEST(test_tls_file_fifo)
{
    char dir[] = "/tmp/greet-unit-fifo.XXXXXX", fifo[64], cacert[96];
    const char *env[] = {"AMQP_URL=amqps://h/", cacert, NULL};
    char *argv[] = {"w", NULL};
    struct config cfg;
    char err[256];

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(fifo, sizeof fifo, "%s/ca.pem", dir);
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    snprintf(cacert, sizeof cacert, "AMQP_CACERT=%s", fifo);
    fake_environ = env;
    ck_assert_int_eq(
        config_load(&cfg, PROGRAM_WORKER, &urls, 1, argv, fake_getenv, err, sizeof err),
        CONFIG_ERROR);
    ck_assert_msg(strstr(err, "a named pipe, not a file") != NULL && strstr(err, fifo) != NULL,
                  "%s", err);
    config_free(&cfg);
    unlink(fifo);
    rmdir(dir);
}
END_TEST

/* The worker logs at info by default; the command-line programs, whose
 * stderr a person reads, at warn.  GREET_LOG_LEVEL sets every program. */
START_TEST(test_log_level_defaults)
{
    static const char *const env[] = {"GREET_LOG_LEVEL=debug", NULL};
    static const struct {
        enum config_program program;
        const char *level;
    } defaults[] = {
        {PROGRAM_WORKER, "info"}, {PROGRAM_PRODUCER, "warn"}, {PROGRAM_REPLIES, "warn"}};
    char *argv[] = {"x", NULL};
    struct config cfg;
    char err[256];

    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        fake_environ = NULL;
        ck_assert_int_eq(
            config_load(&cfg, defaults[i].program, &urls, 1, argv, fake_getenv, err, sizeof err),
            CONFIG_OK);
        ck_assert_str_eq(cfg.log_level, defaults[i].level);
        config_free(&cfg);
        fake_environ = env;
        ck_assert_int_eq(
            config_load(&cfg, defaults[i].program, &urls, 1, argv, fake_getenv, err, sizeof err),
            CONFIG_OK);
        ck_assert_str_eq(cfg.log_level, "debug");
        config_free(&cfg);
    }
}
END_TEST

/* The producer and the subscriber pass no database checker: they take no
 * DATABASE_URL, so they need none, but the worker does. */
START_TEST(test_url_checkers)
{
    static const struct config_urls broker_only = {mq_url_list_mask, NULL};
    char *argv[] = {"x", NULL};
    struct config cfg;
    char err[256];

    fake_environ = NULL;
    ck_assert_int_eq(
        config_load(&cfg, PROGRAM_REPLIES, &broker_only, 1, argv, fake_getenv, err, sizeof err),
        CONFIG_OK);
    config_free(&cfg);
    ck_assert_int_eq(
        config_load(&cfg, PROGRAM_PRODUCER, &broker_only, 1, argv, fake_getenv, err, sizeof err),
        CONFIG_OK);
    config_free(&cfg);
    ck_assert_int_eq(
        config_load(&cfg, PROGRAM_WORKER, &broker_only, 1, argv, fake_getenv, err, sizeof err),
        CONFIG_ERROR);
    ck_assert_ptr_nonnull(strstr(err, "DATABASE_URL (--database-url)"));
    config_free(&cfg);
}
END_TEST

/* Secrets from files (AMQP_URL_FILE, DATABASE_URL_FILE): what a file may
 * hold, and the errors that name the variable and the file. */
static const struct {
    const char *content; /* NULL: no file at that path */
    size_t len;          /* 0: strlen(content) */
    bool also_plain;     /* AMQP_URL set as well */
    const char *want;    /* the URL loaded, or NULL for an error */
    const char *error_has;
} secret_files[] = {
    {"amqp://u:p@h:5672/\n", 0, false, "amqp://u:p@h:5672/", NULL},
    {"amqp://u:p@h:5672/", 0, false, "amqp://u:p@h:5672/", NULL},
    {"amqp://u:p@h:5672/\r\n", 0, false, "amqp://u:p@h:5672/", NULL},
    {"amqp://a:1@h1/,amqp://b:2@h2/\n", 0, false, "amqp://a:1@h1/,amqp://b:2@h2/", NULL},
    {NULL, 0, false, NULL, "AMQP_URL_FILE: cannot read"},
    {"", 0, false, NULL, "must hold the value on one line"},
    {"\n", 0, false, NULL, "must hold the value on one line"},
    {"amqp://h/\namqp://g/\n", 0, false, NULL, "must hold the value on one line"},
    {"amqp://h/\0x", 11, false, NULL, "must hold the value on one line"},
    {"amqp://u:p@h:5672/\n", 0, true, NULL, "AMQP_URL and AMQP_URL_FILE are both set"},
    {"http://u:secret@h/\n", 0, false, NULL, "AMQP_URL (--amqp-url)"},
};

START_TEST(test_secret_files)
{
    char path[] = "/tmp/greet-cfg-XXXXXX", env_file[64], env_plain[] = "AMQP_URL=amqp://x/";
    const char *env[3] = {env_file, NULL, NULL};
    const char *argv[] = {"w", NULL};
    struct config cfg;
    char err[512] = "";
    enum config_status status;
    int fd = mkstemp(path);

    ck_assert(fd >= 0);
    if (secret_files[_i].content != NULL) {
        size_t len = secret_files[_i].len ? secret_files[_i].len : strlen(secret_files[_i].content);
        ck_assert(write(fd, secret_files[_i].content, len) == (ssize_t)len);
    } else {
        unlink(path);
    }
    close(fd);
    snprintf(env_file, sizeof env_file, "AMQP_URL_FILE=%s", path);
    if (secret_files[_i].also_plain)
        env[1] = env_plain;
    fake_environ = env;
    status =
        config_load(&cfg, PROGRAM_WORKER, &urls, 1, (char **)argv, fake_getenv, err, sizeof err);
    if (secret_files[_i].want != NULL) {
        ck_assert_msg(status == CONFIG_OK, "%s", err);
        ck_assert_str_eq(cfg.amqp_url, secret_files[_i].want);
        config_free(&cfg);
    } else {
        ck_assert(status == CONFIG_ERROR);
        ck_assert_msg(strstr(err, secret_files[_i].error_has) != NULL, "%s", err);
        ck_assert_msg(strstr(err, "secret") == NULL && strstr(err, "u:p@") == NULL,
                      "a password in: %s", err);
        config_free(&cfg); /* what was loaded before the error */
    }
    unlink(path);
}
END_TEST

/* Longer than a secret can be: refused, not cut. */
START_TEST(test_secret_file_too_long)
{
    char path[] = "/tmp/greet-cfg-XXXXXX", env_file[64], text[9000];
    const char *env[2] = {env_file, NULL};
    const char *argv[] = {"w", NULL};
    struct config cfg;
    char err[512] = "";
    int fd = mkstemp(path);

    ck_assert(fd >= 0);
    memset(text, 'a', sizeof text);
    ck_assert(write(fd, text, sizeof text) == (ssize_t)sizeof text);
    close(fd);
    snprintf(env_file, sizeof env_file, "DATABASE_URL_FILE=%s", path);
    fake_environ = env;
    ck_assert(config_load(&cfg, PROGRAM_WORKER, &urls, 1, (char **)argv, fake_getenv, err,
                          sizeof err) == CONFIG_ERROR);
    ck_assert_msg(strstr(err, "DATABASE_URL_FILE") && strstr(err, "longer than 8192 bytes"), "%s",
                  err);
    config_free(&cfg);
    unlink(path);
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_load, 0, sizeof cases / sizeof cases[0]);
    tcase_add_test(tc, test_values_and_precedence);
    tcase_add_test(tc, test_tls_values);
    tcase_add_test(tc, test_tls_file_fifo);
    tcase_add_test(tc, test_auth_values);
    tcase_add_test(tc, test_url_checkers);
    tcase_add_test(tc, test_log_level_defaults);
    tcase_add_loop_test(tc, test_secret_files, 0, sizeof secret_files / sizeof secret_files[0]);
    tcase_add_test(tc, test_secret_file_too_long);
    suite_add_tcase(s, tc);
    return s;
}
