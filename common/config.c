/* config.c - the settings table and its loader; see config.h. */
#include "config.h"
#include "files.h"

#include "http_addr.h"
#include "log.h"
#include "token.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum option_type { OPT_STRING, OPT_INT, OPT_SECONDS, OPT_BOOL };

/* An OPT_STRING that is a URL: checked at start-up and logged masked by
 * the struct config_urls function of its kind. */
enum url_kind { URL_NONE, URL_AMQP, URL_DATABASE };

struct option {
    const char *flag; /* without the leading "--" */
    const char *env;  /* NULL: flag only */
    enum option_type type;
    const char *default_value; /* NULL: unset */
    double min, max;           /* for OPT_INT and OPT_SECONDS */
    size_t offset;
    unsigned programs;
    const char *help;
    enum url_kind url; /* last, so that other entries leave it out */
};

/* WP: the programs that take the whole topology (greet-admin checks it). */
#define ALL       (PROGRAM_WORKER | PROGRAM_PRODUCER | PROGRAM_REPLIES | PROGRAM_ADMIN)
#define WP        (PROGRAM_WORKER | PROGRAM_PRODUCER | PROGRAM_ADMIN)
#define AT(field) offsetof(struct config, field)

/* The default prefetch and batch sizes come from the throughput benchmark
 * (README, "Performance"). */
static const struct option options[] = {
    {"amqp-url", "AMQP_URL", OPT_STRING, "amqp://guest:guest@localhost:5672/", 0, 0, AT(amqp_url),
     ALL,
     "broker URL, amqp://user:pass@host:port/vhost (amqps:// for TLS); a cluster's nodes as "
     "a list separated by ',' or ';'",
     URL_AMQP},
    {"amqp-cacert", "AMQP_CACERT", OPT_STRING, "/etc/ssl/certs/ca-certificates.crt", 0, 0,
     AT(amqp_cacert), ALL, "CA bundle that verifies the broker's certificate with amqps://"},
    {"amqp-cert", "AMQP_CERT", OPT_STRING, NULL, 0, 0, AT(amqp_cert), ALL,
     "client certificate (PEM) to show the broker with amqps://; with no password in AMQP_URL, "
     "the login is by certificate (SASL EXTERNAL)"},
    {"amqp-key", "AMQP_KEY", OPT_STRING, NULL, 0, 0, AT(amqp_key), ALL,
     "private key (PEM, not encrypted) of AMQP_CERT"},
    {"database-url", "DATABASE_URL", OPT_STRING, "postgresql:///greet", 0, 0, AT(database_url),
     PROGRAM_WORKER | PROGRAM_ADMIN,
     "libpq connection string or URI (greet-admin migrate: a role that may create tables)",
     URL_DATABASE},
    {"jobs-queue", "GREET_JOBS_QUEUE", OPT_STRING, "greet.jobs", 0, 0, AT(jobs_queue), WP,
     "the jobs queue"},
    {"reply-queue", "GREET_REPLY_QUEUE", OPT_STRING, "greet.replies", 0, 0, AT(reply_queue), ALL,
     "default reply queue (greet-replies: the queue it reads)"},
    {"dead-queue", "GREET_DEAD_QUEUE", OPT_STRING, "greet.dead", 0, 0, AT(dead_queue), WP,
     "dead-letter queue"},
    {"delivery-limit", "GREET_DELIVERY_LIMIT", OPT_INT, "20", 1, 100000, AT(delivery_limit), WP,
     "deliveries of one job before the broker dead-letters it"},
    {"heartbeat", "GREET_HEARTBEAT", OPT_SECONDS, "10", 0, 3600, AT(heartbeat), ALL,
     "AMQP heartbeat in seconds (0: off)"},
    {"prefetch", "GREET_PREFETCH", OPT_INT, "200", 1, 65535, AT(prefetch),
     PROGRAM_WORKER | PROGRAM_REPLIES, "deliveries held unacked at most"},
    {"batch-max", "GREET_BATCH_MAX", OPT_INT, "200", 1, 65535, AT(batch_max), PROGRAM_WORKER,
     "jobs looked up in one database round trip at most"},
    {"shutdown-timeout", "GREET_SHUTDOWN_TIMEOUT", OPT_SECONDS, "10", 0, 3600, AT(shutdown_timeout),
     PROGRAM_WORKER, "seconds to finish jobs in hand after SIGTERM"},
    {"stats-interval", "GREET_STATS_INTERVAL", OPT_SECONDS, "30", 0, 86400, AT(stats_interval),
     PROGRAM_WORKER, "seconds between summary lines (0: only at exit)"},
    {"db-timeout", "GREET_DB_TIMEOUT", OPT_SECONDS, "5", 0.001, 3600, AT(db_timeout),
     PROGRAM_WORKER, "seconds a preference lookup may take before it is retried"},
    {"http-addr", "GREET_HTTP_ADDR", OPT_STRING, "", 0, 0, AT(http_addr), PROGRAM_WORKER,
     "serve /metrics, /healthz and /readyz on HOST:PORT, e.g. 127.0.0.1:9464 or :9464 (default: "
     "off)"},
    {"auth", "GREET_AUTH", OPT_STRING, "none", 0, 0, AT(auth), PROGRAM_WORKER,
     "none, or jwt: every job must carry a token signed for its user_id, checked with "
     "GREET_JWT_KEY_FILE"},
    {"jwt-key-file", "GREET_JWT_KEY_FILE", OPT_STRING, NULL, 0, 0, AT(jwt_key_file), PROGRAM_WORKER,
     "with GREET_AUTH=jwt: the file whose bytes are the HMAC secret, or holding the PEM public "
     "key, that verifies the tokens (read once, at start)"},
    {"jwt-alg", "GREET_JWT_ALG", OPT_STRING, "HS256", 0, 0, AT(jwt_alg), PROGRAM_WORKER,
     "the one alg a token may have: " TOKEN_ALGS},
    {"jwt-issuer", "GREET_JWT_ISSUER", OPT_STRING, NULL, 0, 0, AT(jwt_issuer), PROGRAM_WORKER,
     "when set, a token's iss must be this"},
    {"jwt-audience", "GREET_JWT_AUDIENCE", OPT_STRING, NULL, 0, 0, AT(jwt_audience), PROGRAM_WORKER,
     "when set, a token's aud must be this, or a list holding it"},
    {"jwt-leeway", "GREET_JWT_LEEWAY", OPT_SECONDS, "30", 0, 3600, AT(jwt_leeway), PROGRAM_WORKER,
     "seconds of clock skew allowed on a token's exp and nbf"},
    {"log-level", "GREET_LOG_LEVEL", OPT_STRING, "info", 0, 0, AT(log_level), PROGRAM_WORKER,
     "debug, info, warn or error"},
    /* The command-line programs log on the stderr a person reads, where
     * the effective config line (info) would be noise on every run. */
    {"log-level", "GREET_LOG_LEVEL", OPT_STRING, "warn", 0, 0, AT(log_level),
     PROGRAM_PRODUCER | PROGRAM_REPLIES | PROGRAM_ADMIN, "debug, info, warn or error"},

    {"user-id", NULL, OPT_INT, NULL, 1, 9223372036854775807.0, AT(user_id), PROGRAM_PRODUCER,
     "user_id of the one job to send"},
    {"name", NULL, OPT_STRING, NULL, 0, 0, AT(name), PROGRAM_PRODUCER,
     "name of the one job to send"},
    {"job-id", NULL, OPT_STRING, NULL, 0, 0, AT(job_id), PROGRAM_PRODUCER,
     "job_id of the one job to send (default: generated)"},
    {"id-prefix", NULL, OPT_STRING, NULL, 0, 0, AT(id_prefix), PROGRAM_PRODUCER,
     "generated job_ids are PREFIX-1, PREFIX-2, ... (default: a random prefix)"},
    {"reply-to", NULL, OPT_STRING, NULL, 0, 0, AT(reply_to), PROGRAM_PRODUCER,
     "reply_to property of every job sent"},
    {"correlation-id", NULL, OPT_STRING, NULL, 0, 0, AT(correlation_id), PROGRAM_PRODUCER,
     "correlation_id of the one job to send"},
    {"file", NULL, OPT_STRING, NULL, 0, 0, AT(file), PROGRAM_PRODUCER,
     "send the jobs of a JSON-lines file, one job per line ('-': stdin)"},
    /* No default: 0 means "unset" (one job from flags), and an explicit
     * --count 0 is refused rather than read as that. */
    {"count", NULL, OPT_INT, NULL, 1, 100000000, AT(count), PROGRAM_PRODUCER,
     "send a synthetic load of COUNT jobs"},
    {"users", NULL, OPT_INT, "1000", 1, 100000000, AT(users), PROGRAM_PRODUCER,
     "with --count: spread the jobs over user_id 1..USERS"},
    {"rate", NULL, OPT_SECONDS, "0", 0, 10000000, AT(rate), PROGRAM_PRODUCER,
     "with --count: publish at RATE jobs/s (0: as fast as confirms allow)"},
    {"wait", NULL, OPT_BOOL, NULL, 0, 0, AT(wait), PROGRAM_PRODUCER,
     "read the replies on a private queue, print them, exit 0 only if all are ok"},
    {"raw", NULL, OPT_BOOL, NULL, 0, 0, AT(raw), PROGRAM_PRODUCER,
     "with --file: send each line as it is, unchecked (to test or replay bad jobs)"},
    {"progress", NULL, OPT_BOOL, NULL, 0, 0, AT(progress), PROGRAM_PRODUCER,
     "show progress on stderr even when it is not a terminal"},
    /* Flags only: a producer signs when told to, never because a worker's
     * GREET_JWT_* happen to be in its environment. */
    {"jwt-key", NULL, OPT_STRING, NULL, 0, 0, AT(jwt_key), PROGRAM_PRODUCER,
     "give every job with a user_id a token signed for it: the file whose bytes are the HMAC "
     "secret, or holding the PEM private key"},
    {"jwt-alg", NULL, OPT_STRING, "HS256", 0, 0, AT(jwt_alg), PROGRAM_PRODUCER,
     "with --jwt-key: the alg, one of " TOKEN_ALGS},
    {"jwt-ttl", NULL, OPT_INT, "3600", 1, 31536000, AT(jwt_ttl), PROGRAM_PRODUCER,
     "with --jwt-key: seconds a token stays valid (its exp)"},
    {"jwt-issuer", NULL, OPT_STRING, NULL, 0, 0, AT(jwt_issuer), PROGRAM_PRODUCER,
     "with --jwt-key: the tokens' iss"},
    {"jwt-audience", NULL, OPT_STRING, NULL, 0, 0, AT(jwt_audience), PROGRAM_PRODUCER,
     "with --jwt-key: the tokens' aud"},
    {"count", NULL, OPT_INT, "0", 0, 100000000, AT(count), PROGRAM_REPLIES,
     "stop after COUNT replies (0: run until a signal)"},
    {"dedupe", NULL, OPT_BOOL, NULL, 0, 0, AT(dedupe), PROGRAM_REPLIES,
     "drop a reply whose message_id was already printed in this run"},
    {"envelope", NULL, OPT_BOOL, NULL, 0, 0, AT(envelope), PROGRAM_REPLIES,
     "print properties and x-greet-* headers around each body (to inspect the dead queue)"},
    {"timeout", NULL, OPT_SECONDS, "0", 0, 86400, AT(timeout), PROGRAM_PRODUCER,
     "give up after SECONDS and exit 1 (0: no limit, or 60 with --wait)"},
    {"timeout", NULL, OPT_SECONDS, "0", 0, 86400, AT(timeout), PROGRAM_REPLIES,
     "stop after SECONDS; with --count, exit 1 if fewer replies came (0: no limit)"},

    /* greet-admin: every subcommand is loaded with these; its main()
     * refuses the ones a subcommand does not take. */
    {"format", NULL, OPT_STRING, "auto", 0, 0, AT(format), PROGRAM_ADMIN,
     "table, json (one object per line) or auto: a table on a terminal, json otherwise"},
    {"error", NULL, OPT_STRING, NULL, 0, 0, AT(error_code), PROGRAM_ADMIN,
     "dead list, replay: only dead jobs with this x-greet-error code or way of dying "
     "(poison, delivery_limit, reply_refused...)"},
    {"job-id", NULL, OPT_STRING, NULL, 0, 0, AT(job_id), PROGRAM_ADMIN,
     "dead list, replay: only the dead jobs with this job_id"},
    {"limit", NULL, OPT_INT, NULL, 1, 100000000, AT(limit), PROGRAM_ADMIN,
     "dead list, replay: at most LIMIT matching jobs"},
    {"dry-run", NULL, OPT_BOOL, NULL, 0, 0, AT(dry_run), PROGRAM_ADMIN,
     "dead replay: show what would be replayed, move nothing"},
    {"yes", NULL, OPT_BOOL, NULL, 0, 0, AT(yes), PROGRAM_ADMIN,
     "dead purge: delete the dead jobs (without it, only say how many would go)"},
    {"sql-dir", "GREET_SQL_DIR", OPT_STRING, NULL, 0, 0, AT(sql_dir), PROGRAM_ADMIN,
     "migrate: the directory of the numbered .sql files (default: the installed "
     "PREFIX/share/greet/sql, else ./sql)"},
    {"sample", NULL, OPT_BOOL, NULL, 0, 0, AT(sample), PROGRAM_ADMIN,
     "migrate: apply the sample data (sample/*.sql) too"},
};

#define N_OPTIONS (sizeof options / sizeof options[0])

static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* "GREET_PREFETCH (--prefetch)" or "--name": how errors name a setting. */
static void option_label(const struct option *opt, char *out, size_t outlen)
{
    if (opt->env)
        snprintf(out, outlen, "%s (--%s)", opt->env, opt->flag);
    else
        snprintf(out, outlen, "--%s", opt->flag);
}

static bool parse_bool(const char *text, bool *value)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off", ""};

    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcmp(text, yes[i]) == 0) {
            *value = true;
            return true;
        }
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        if (strcmp(text, no[i]) == 0) {
            *value = false;
            return true;
        }
    }
    return false;
}

/* An OPT_INT bound of the table as the integer it stands for: a double
 * holds each exactly but LLONG_MAX, which it rounds up to 2^63. */
static long long int_bound(double bound)
{
    if (bound >= 0x1p63)
        return LLONG_MAX;
    if (bound <= -0x1p63)
        return LLONG_MIN;
    return (long long)bound;
}

static bool set_option(struct config *cfg, const struct option *opt, const char *text, char *err,
                       size_t errlen)
{
    char *field = (char *)cfg + opt->offset;
    char label[96];
    char *end;

    option_label(opt, label, sizeof label);
    switch (opt->type) {
    case OPT_STRING: {
        char *copy = strdup(text);
        if (copy == NULL) {
            set_error(err, errlen, "%s: out of memory", label);
            return false;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return true;
    }
    case OPT_INT: {
        long long value, min = int_bound(opt->min), max = int_bound(opt->max);
        errno = 0;
        value = strtoll(text, &end, 10);
        if (errno != 0 || end == text || *end != '\0' || value < min || value > max) {
            set_error(err, errlen, "%s: expected a whole number from %lld to %lld, got '%s'", label,
                      min, max, text);
            return false;
        }
        *(long long *)field = value;
        return true;
    }
    case OPT_SECONDS: {
        double value;
        errno = 0;
        value = strtod(text, &end);
        if (errno != 0 || end == text || *end != '\0' || !isfinite(value) || value < opt->min ||
            value > opt->max) {
            set_error(err, errlen, "%s: expected a number from %g to %g, got '%s'", label, opt->min,
                      opt->max, text);
            return false;
        }
        *(double *)field = value;
        return true;
    }
    case OPT_BOOL:
        if (!parse_bool(text, (bool *)field)) {
            set_error(err, errlen, "%s: expected true or false, got '%s'", label, text);
            return false;
        }
        return true;
    }
    return false;
}

static const struct option *find_flag(enum config_program program, const char *flag, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *opt = &options[i];
        if ((opt->programs & program) && strlen(opt->flag) == len &&
            strncmp(opt->flag, flag, len) == 0)
            return opt;
    }
    return NULL;
}

/* Secrets from files: a URL setting NAME may come from the file that
 * NAME_FILE names instead, the convention of Docker and Kubernetes
 * secrets.  The file holds the value; one trailing newline is dropped. */
#define SECRET_FILE_MAX 8192

enum secret_source { SECRET_NONE, SECRET_READ, SECRET_ERROR };

static enum secret_source secret_from_file(const struct option *opt, config_getenv_fn environ_get,
                                           const char *from_env, char *out, char *err,
                                           size_t errlen)
{
    char name[96];
    const char *path;
    FILE *f;
    size_t len;

    snprintf(name, sizeof name, "%s_FILE", opt->env);
    path = environ_get(name);
    if (path == NULL || path[0] == '\0')
        return SECRET_NONE;
    if (from_env != NULL && from_env[0] != '\0') {
        set_error(err, errlen, "%s and %s are both set: give one", opt->env, name);
        return SECRET_ERROR;
    }
    f = fopen(path, "r");
    if (f == NULL) {
        set_error(err, errlen, "%s: cannot read '%s': %s", name, path, strerror(errno));
        return SECRET_ERROR;
    }
    len = fread(out, 1, SECRET_FILE_MAX + 1, f);
    fclose(f);
    if (len > SECRET_FILE_MAX) {
        set_error(err, errlen, "%s: '%s' is longer than %d bytes", name, path, SECRET_FILE_MAX);
        return SECRET_ERROR;
    }
    if (len > 0 && out[len - 1] == '\n')
        len--;
    if (len > 0 && out[len - 1] == '\r')
        len--;
    out[len] = '\0';
    if (len == 0 || memchr(out, '\0', len) != NULL || memchr(out, '\n', len) != NULL) {
        set_error(err, errlen, "%s: '%s' must hold the value on one line", name, path);
        return SECRET_ERROR;
    }
    return SECRET_READ;
}

static bool validate_queue(const char *label, const char *name, char *err, size_t errlen)
{
    size_t len = strlen(name);

    /* AMQP queue names are short strings: 1 to 255 bytes. */
    if (len == 0 || len > 255) {
        set_error(err, errlen, "%s: a queue name must be 1 to 255 bytes, got %zu", label, len);
        return false;
    }
    if (strncmp(name, "amq.", 4) == 0) {
        set_error(err, errlen, "%s: '%s': names starting with 'amq.' are reserved by the broker",
                  label, name);
        return false;
    }
    return true;
}

static config_url_fn url_checker(const struct config *cfg, enum url_kind kind)
{
    switch (kind) {
    case URL_AMQP:
        return cfg->urls.amqp;
    case URL_DATABASE:
        return cfg->urls.database;
    case URL_NONE:
        break;
    }
    return NULL;
}

static bool validate_urls(const struct config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *opt = &options[i];
        config_url_fn check = url_checker(cfg, opt->url);
        char label[96], masked[512], why[384];
        const char *url;

        if (opt->url == URL_NONE || !(opt->programs & cfg->program))
            continue;
        url = *(char *const *)((const char *)cfg + opt->offset);
        option_label(opt, label, sizeof label);
        /* A main() that passes no checker for a URL its program takes is
         * a bug: stop at once rather than run with the URL unchecked. */
        if (check == NULL) {
            set_error(err, errlen, "%s: this program has no checker for it", label);
            return false;
        }
        if (!check(url, masked, sizeof masked, why, sizeof why)) {
            set_error(err, errlen, "%s: %s", label, why);
            return false;
        }
    }
    return true;
}

/* The schemes of AMQP_URL's entries (checked already: each parses): how
 * many there are, how many are amqps://, and the position (from 1) of the
 * first plain amqp:// one, 0 if none.  A ',' or ';' inside an entry is
 * written %2C or %3B, so splitting here is exact. */
struct url_schemes {
    size_t entries, tls, first_plain;
};

static struct url_schemes url_schemes(const char *list)
{
    struct url_schemes schemes = {0, 0, 0};

    for (const char *entry = list; entry != NULL;) {
        const char *next = entry + strcspn(entry, ",;");
        entry += strspn(entry, " \t\r\n");
        schemes.entries++;
        if (strncmp(entry, "amqps://", 8) == 0)
            schemes.tls++;
        else if (schemes.first_plain == 0)
            schemes.first_plain = schemes.entries;
        entry = *next ? next + 1 : NULL;
    }
    return schemes;
}

static bool is_set(const char *value)
{
    return value != NULL && value[0] != '\0';
}

/* TLS settings: a certificate goes with its key, only over amqps://, and
 * every file named must be readable now rather than at each reconnect. */
static bool validate_tls(const struct config *cfg, char *err, size_t errlen)
{
    struct url_schemes schemes = url_schemes(cfg->amqp_url);
    char why[512];

    if (is_set(cfg->amqp_cert) != is_set(cfg->amqp_key)) {
        set_error(err, errlen, "%s is set but %s is not: a client certificate needs its key",
                  is_set(cfg->amqp_cert) ? "AMQP_CERT (--amqp-cert)" : "AMQP_KEY (--amqp-key)",
                  is_set(cfg->amqp_cert) ? "AMQP_KEY (--amqp-key)" : "AMQP_CERT (--amqp-cert)");
        return false;
    }
    if (is_set(cfg->amqp_cert) && schemes.first_plain != 0) {
        if (schemes.entries == 1)
            set_error(err, errlen,
                      "AMQP_CERT (--amqp-cert): a client certificate needs TLS, but AMQP_URL "
                      "is amqp://, not amqps://");
        else
            set_error(err, errlen,
                      "AMQP_CERT (--amqp-cert): a client certificate needs TLS, but AMQP_URL "
                      "entry %zu of %zu is amqp://, not amqps://",
                      schemes.first_plain, schemes.entries);
        return false;
    }
    if (is_set(cfg->amqp_cert) && !file_readable(cfg->amqp_cert, why, sizeof why)) {
        set_error(err, errlen, "AMQP_CERT (--amqp-cert): %s", why);
        return false;
    }
    if (is_set(cfg->amqp_key) && !file_readable(cfg->amqp_key, why, sizeof why)) {
        set_error(err, errlen, "AMQP_KEY (--amqp-key): %s", why);
        return false;
    }
    /* The CA bundle matters only with TLS: a host without the default
     * bundle may still talk amqp://. */
    if (schemes.tls > 0 && is_set(cfg->amqp_cacert) &&
        !file_readable(cfg->amqp_cacert, why, sizeof why)) {
        set_error(err, errlen, "AMQP_CACERT (--amqp-cacert): %s", why);
        return false;
    }
    return true;
}

/* NULL when alg is one of TOKEN_ALGS, exactly; else what to say. */
static const char *alg_problem(const char *alg)
{
    const char *list = TOKEN_ALGS;
    size_t len = strlen(alg);

    for (const char *p = list; len > 0 && (p = strstr(p, alg)) != NULL; p++)
        if ((p == list || p[-1] == ' ') && (p[len] == ',' || p[len] == '\0'))
            return NULL;
    if (strcasecmp(alg, "EdDSA") == 0 || strcasecmp(alg, "Ed25519") == 0)
        return "EdDSA is not supported by libjwt 1.10 (Debian 12's); for a public key use ES256 "
               "or RS256";
    if (strcasecmp(alg, "none") == 0)
        return "none would take unsigned tokens; expected one of " TOKEN_ALGS;
    return "expected one of " TOKEN_ALGS;
}

/* Authenticated jobs: a key to check tokens with, readable now, and an
 * alg this build has.  A key file without GREET_AUTH=jwt is refused: the
 * operator meant tokens to be checked, and they would not be. */
static bool validate_auth(const struct config *cfg, char *err, size_t errlen)
{
    const char *problem;
    char why[512];

    if (cfg->program & PROGRAM_WORKER) {
        if (strcmp(cfg->auth, "none") != 0 && strcmp(cfg->auth, "jwt") != 0) {
            set_error(err, errlen, "GREET_AUTH (--auth): expected none or jwt, got '%s'",
                      cfg->auth);
            return false;
        }
        if (strcmp(cfg->auth, "none") == 0) {
            if (!is_set(cfg->jwt_key_file))
                return true;
            set_error(err, errlen,
                      "GREET_JWT_KEY_FILE (--jwt-key-file) is set but GREET_AUTH is none: set "
                      "GREET_AUTH=jwt to check tokens, or unset it");
            return false;
        }
        if (!is_set(cfg->jwt_key_file)) {
            set_error(err, errlen,
                      "GREET_AUTH=jwt needs GREET_JWT_KEY_FILE (--jwt-key-file): the file of the "
                      "key that verifies the tokens (an HMAC key, or a PEM public key)");
            return false;
        }
        if (!file_readable(cfg->jwt_key_file, why, sizeof why)) {
            set_error(err, errlen, "GREET_JWT_KEY_FILE (--jwt-key-file): %s", why);
            return false;
        }
        if ((problem = alg_problem(cfg->jwt_alg)) != NULL) {
            set_error(err, errlen, "GREET_JWT_ALG (--jwt-alg): '%s': %s", cfg->jwt_alg, problem);
            return false;
        }
    }
    if (cfg->program & PROGRAM_PRODUCER) {
        if (!is_set(cfg->jwt_key)) {
            if (!is_set(cfg->jwt_issuer) && !is_set(cfg->jwt_audience))
                return true;
            set_error(err, errlen, "--jwt-issuer and --jwt-audience apply to --jwt-key");
            return false;
        }
        if (!file_readable(cfg->jwt_key, why, sizeof why)) {
            set_error(err, errlen, "--jwt-key: %s", why);
            return false;
        }
        if ((problem = alg_problem(cfg->jwt_alg)) != NULL) {
            set_error(err, errlen, "--jwt-alg: '%s': %s", cfg->jwt_alg, problem);
            return false;
        }
    }
    return true;
}

static bool validate(const struct config *cfg, char *err, size_t errlen)
{
    enum log_level level;

    if (!validate_urls(cfg, err, errlen))
        return false;
    if (!validate_tls(cfg, err, errlen))
        return false;
    if ((cfg->program & WP) &&
        !validate_queue("GREET_JOBS_QUEUE (--jobs-queue)", cfg->jobs_queue, err, errlen))
        return false;
    if (!validate_queue("GREET_REPLY_QUEUE (--reply-queue)", cfg->reply_queue, err, errlen))
        return false;
    if ((cfg->program & WP) &&
        !validate_queue("GREET_DEAD_QUEUE (--dead-queue)", cfg->dead_queue, err, errlen))
        return false;
    if ((cfg->program & WP) && (strcmp(cfg->jobs_queue, cfg->reply_queue) == 0 ||
                                strcmp(cfg->jobs_queue, cfg->dead_queue) == 0 ||
                                strcmp(cfg->reply_queue, cfg->dead_queue) == 0)) {
        set_error(err, errlen,
                  "GREET_JOBS_QUEUE, GREET_REPLY_QUEUE and GREET_DEAD_QUEUE must name three "
                  "different queues ('%s', '%s', '%s')",
                  cfg->jobs_queue, cfg->reply_queue, cfg->dead_queue);
        return false;
    }
    if ((cfg->program & PROGRAM_WORKER) && cfg->http_addr[0] != '\0') {
        struct http_addr addr;
        char why[256];
        if (!http_addr_parse(cfg->http_addr, &addr, why, sizeof why)) {
            set_error(err, errlen, "GREET_HTTP_ADDR (--http-addr): %s", why);
            return false;
        }
    }
    if (!validate_auth(cfg, err, errlen))
        return false;
    if (!log_level_parse(cfg->log_level, &level)) {
        set_error(err, errlen,
                  "GREET_LOG_LEVEL (--log-level): expected debug, info, warn or error, got '%s'",
                  cfg->log_level);
        return false;
    }
    return true;
}

enum config_status config_load(struct config *cfg, enum config_program program,
                               const struct config_urls *urls, int argc, char **argv,
                               config_getenv_fn environ_get, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->program = program;
    if (urls != NULL)
        cfg->urls = *urls;

    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *opt = &options[i];
        const char *value = opt->default_value;
        const char *from_env = opt->env ? environ_get(opt->env) : NULL;
        char from_file[SECRET_FILE_MAX + 1];

        if (!(opt->programs & program))
            continue;
        if (from_env != NULL && from_env[0] != '\0')
            value = from_env;
        if (opt->url != URL_NONE) {
            switch (secret_from_file(opt, environ_get, from_env, from_file, err, errlen)) {
            case SECRET_NONE:
                break;
            case SECRET_READ:
                value = from_file;
                break;
            case SECRET_ERROR:
                return CONFIG_ERROR;
            }
        }
        if (value != NULL && !set_option(cfg, opt, value, err, errlen))
            return CONFIG_ERROR;
    }

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *flag, *eq, *value;
        const struct option *opt;
        size_t flag_len;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
            return CONFIG_HELP;
        if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0)
            return CONFIG_VERSION;
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            set_error(err, errlen, "unexpected argument '%s' (options start with --; see --help)",
                      arg);
            return CONFIG_ERROR;
        }
        flag = arg + 2;
        eq = strchr(flag, '=');
        flag_len = eq ? (size_t)(eq - flag) : strlen(flag);
        opt = find_flag(program, flag, flag_len);
        if (opt == NULL) {
            set_error(err, errlen, "unknown option '--%.*s' (see --help)", (int)flag_len, flag);
            return CONFIG_ERROR;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (opt->type == OPT_BOOL) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            set_error(err, errlen, "option '--%s' needs a value", opt->flag);
            return CONFIG_ERROR;
        }
        if (!set_option(cfg, opt, value, err, errlen))
            return CONFIG_ERROR;
    }

    return validate(cfg, err, errlen) ? CONFIG_OK : CONFIG_ERROR;
}

int config_startup(struct config *cfg, enum config_program program, const struct config_urls *urls,
                   const char *name, const char *summary, int argc, char **argv)
{
    char err[512];

    switch (config_load(cfg, program, urls, argc, argv, getenv, err, sizeof err)) {
    case CONFIG_OK:
        return -1;
    case CONFIG_HELP:
        config_usage(stdout, program, name, summary);
        config_free(cfg);
        return 0;
    case CONFIG_VERSION:
        printf("%s %s\n", name, GREET_VERSION);
        config_free(cfg);
        return 0;
    case CONFIG_ERROR:
        break;
    }
    fprintf(stderr, "%s: %s\n", name, err);
    config_free(cfg);
    return 2;
}

void config_free(struct config *cfg)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].type == OPT_STRING) {
            char **field = (char **)((char *)cfg + options[i].offset);
            free(*field);
            *field = NULL;
        }
    }
}

void config_usage(FILE *out, enum config_program program, const char *name, const char *summary)
{
    fprintf(out,
            "Usage: %s [OPTION]...\n%s\n\nOptions (each also read from the environment variable "
            "shown):\n",
            name, summary);
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *opt = &options[i];
        char left[64];

        if (!(opt->programs & program))
            continue;
        snprintf(left, sizeof left, "--%s%s", opt->flag, opt->type == OPT_BOOL ? "" : " VALUE");
        fprintf(out, "  %-26s %s", left, opt->help);
        if (opt->env && opt->url != URL_NONE)
            fprintf(out, " [%s, or a file named by %s_FILE]", opt->env, opt->env);
        else if (opt->env)
            fprintf(out, " [%s]", opt->env);
        if (opt->default_value && opt->default_value[0] != '\0' && opt->type != OPT_BOOL &&
            strcmp(opt->default_value, "0") != 0)
            fprintf(out, " (default %s)", opt->default_value);
        fputc('\n', out);
    }
    fprintf(out, "  %-26s %s\n  %-26s %s\n", "--help", "show this help and exit", "--version",
            "show the version and exit");
    fprintf(out, "\nExit status: 0 on success, 1 on a runtime failure, 2 on bad usage.\n");
}

void config_log_effective(const struct config *cfg)
{
    struct log_line line;

    log_begin(&line, LOG_INFO, "config");
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const struct option *opt = &options[i];
        const char *field = (const char *)cfg + opt->offset;

        if (!(opt->programs & cfg->program) || opt->env == NULL)
            continue;
        switch (opt->type) {
        case OPT_STRING: {
            const char *value = *(char *const *)field;
            config_url_fn mask = url_checker(cfg, opt->url);
            char masked[512];

            /* Unparsable URLs stopped start-up, but the mask holds
             * either way. */
            if (opt->url != URL_NONE) {
                if (mask == NULL)
                    snprintf(masked, sizeof masked, "***");
                else
                    mask(value, masked, sizeof masked, NULL, 0);
                value = masked;
            }
            log_str(&line, opt->env, value);
            break;
        }
        case OPT_INT:
            log_int(&line, opt->env, *(const long long *)field);
            break;
        case OPT_SECONDS:
            log_double(&line, opt->env, *(const double *)field);
            break;
        case OPT_BOOL:
            log_str(&line, opt->env, *(const bool *)field ? "true" : "false");
            break;
        }
    }
    log_end(&line);
}
