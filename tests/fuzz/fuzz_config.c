/* fuzz_config.c - config_load() on any environment and command line.
 *
 * The environment and argv come from the input, never from the process:
 * a NAME_FILE variable reads as unset, so no file is opened.  Whatever
 * they hold: a CONFIG_OK config is one every setting's check accepts (the
 * ranges of --help, the queues, the URLs, GREET_HTTP_ADDR, the log
 * level), a CONFIG_ERROR says why, and about a URL says only what its
 * checker says (which fuzz_mq_url and fuzz_db_url hold to never showing
 * a password); config_free() frees all, on every path (LeakSanitizer);
 * the effective config is logged as one line whose URLs are the
 * checkers' masked forms. */
#include "buf.h"
#include "config.h"
#include "db_url.h"
#include "fuzz.h"
#include "http_addr.h"
#include "log.h"
#include "mq_url.h"
#include "token.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_ENV  16
#define MAX_ARGV 24

static const char *environment[MAX_ENV];
static size_t environment_count;

static char *fake_getenv(const char *name)
{
    size_t len = strlen(name);

    if (len > 5 && strcmp(name + len - 5, "_FILE") == 0)
        return NULL; /* no secret files: nothing outside the input */
    for (size_t i = 0; i < environment_count; i++)
        if (strncmp(environment[i], name, len) == 0 && environment[i][len] == '=')
            return (char *)environment[i] + len + 1;
    return NULL;
}

static void require_int(const char *what, long long value, long long min, long long max)
{
    fuzz_require(value >= min && value <= max, "%s %lld outside %lld..%lld", what, value, min, max);
}

static void require_seconds(const char *what, double value, double min, double max)
{
    fuzz_require(isfinite(value) && value >= min && value <= max, "%s %g outside %g..%g", what,
                 value, min, max);
}

static void require_queue(const char *what, const char *name)
{
    size_t len = strlen(name);
    fuzz_require(len >= 1 && len <= 255 && strncmp(name, "amq.", 4) != 0, "%s '%s'", what, name);
}

/* Whether alg is one of TOKEN_ALGS, word for word. */
static bool alg_listed(const char *alg)
{
    char list[] = TOKEN_ALGS;

    for (char *word = strtok(list, ", "); word != NULL; word = strtok(NULL, ", "))
        if (strcmp(word, alg) == 0)
            return true;
    return false;
}

/* A CONFIG_OK config holds only what each setting accepts. */
static void check_valid(const struct config *cfg)
{
    char masked[512], why[384];
    struct http_addr addr;
    enum log_level level;
    bool topology = cfg->program != PROGRAM_REPLIES;

    fuzz_require(mq_url_list_mask(cfg->amqp_url, masked, sizeof masked, why, sizeof why),
                 "AMQP_URL accepted, yet: %s", why);
    if (cfg->program == PROGRAM_WORKER || cfg->program == PROGRAM_ADMIN)
        fuzz_require(db_url_mask(cfg->database_url, masked, sizeof masked, why, sizeof why),
                     "DATABASE_URL accepted, yet: %s", why);
    require_queue("reply queue", cfg->reply_queue);
    if (topology) {
        require_queue("jobs queue", cfg->jobs_queue);
        require_queue("dead queue", cfg->dead_queue);
        fuzz_require(strcmp(cfg->jobs_queue, cfg->reply_queue) != 0 &&
                         strcmp(cfg->jobs_queue, cfg->dead_queue) != 0 &&
                         strcmp(cfg->reply_queue, cfg->dead_queue) != 0,
                     "two queues share a name");
        require_int("delivery limit", cfg->delivery_limit, 1, 100000);
    }
    fuzz_require(log_level_parse(cfg->log_level, &level), "log level '%s'", cfg->log_level);
    require_seconds("heartbeat", cfg->heartbeat, 0, 3600);
    switch (cfg->program) {
    case PROGRAM_WORKER:
        require_int("prefetch", cfg->prefetch, 1, 65535);
        require_int("batch max", cfg->batch_max, 1, 65535);
        require_seconds("shutdown timeout", cfg->shutdown_timeout, 0, 3600);
        require_seconds("stats interval", cfg->stats_interval, 0, 86400);
        require_seconds("db timeout", cfg->db_timeout, 0.001, 3600);
        fuzz_require(cfg->http_addr[0] == '\0' ||
                         http_addr_parse(cfg->http_addr, &addr, why, sizeof why),
                     "GREET_HTTP_ADDR accepted, yet: %s", why);
        fuzz_require(strcmp(cfg->auth, "none") == 0 || strcmp(cfg->auth, "jwt") == 0,
                     "GREET_AUTH '%s'", cfg->auth);
        fuzz_require(strcmp(cfg->auth, "jwt") != 0 || (cfg->jwt_key_file && cfg->jwt_key_file[0]),
                     "GREET_AUTH=jwt without a key file");
        fuzz_require(strcmp(cfg->auth, "jwt") == 0 || !cfg->jwt_key_file || !cfg->jwt_key_file[0],
                     "a key file without GREET_AUTH=jwt");
        fuzz_require(strcmp(cfg->auth, "jwt") != 0 || alg_listed(cfg->jwt_alg),
                     "GREET_JWT_ALG '%s'", cfg->jwt_alg);
        require_seconds("jwt leeway", cfg->jwt_leeway, 0, 3600);
        break;
    case PROGRAM_PRODUCER:
        require_int("user_id", cfg->user_id, 0, 9223372036854775807LL);
        require_int("count", cfg->count, 0, 100000000);
        require_int("users", cfg->users, 1, 100000000);
        require_seconds("rate", cfg->rate, 0, 10000000);
        require_seconds("timeout", cfg->timeout, 0, 86400);
        require_int("jwt ttl", cfg->jwt_ttl, 1, 31536000);
        fuzz_require(!cfg->jwt_key || !cfg->jwt_key[0] || alg_listed(cfg->jwt_alg),
                     "--jwt-alg '%s'", cfg->jwt_alg);
        break;
    case PROGRAM_REPLIES:
        require_int("prefetch", cfg->prefetch, 1, 65535);
        require_int("count", cfg->count, 0, 100000000);
        require_seconds("timeout", cfg->timeout, 0, 86400);
        break;
    case PROGRAM_ADMIN:
        require_int("limit", cfg->limit, 0, 100000000);
        fuzz_require(cfg->format != NULL, "no format");
        break;
    }
}

/* An error about a URL is the checker's, after the setting's name. */
static void check_url_error(const char *err, const char *label, config_url_fn check,
                            const char *url)
{
    char masked[512], why[384], expected[512];

    if (strncmp(err, label, strlen(label)) != 0 || check == NULL || url == NULL)
        return;
    if (strcmp(err + strlen(label), ": this program has no checker for it") == 0)
        return;
    fuzz_require(!check(url, masked, sizeof masked, why, sizeof why), "%s refused, yet parses",
                 label);
    snprintf(expected, sizeof expected, "%s: %s", label, why);
    fuzz_require(strcmp(err, expected) == 0, "error '%s', the checker says '%s'", err, expected);
}

/* The logfmt value at *p (quoted or bare) into out, unescaped; *p moves
 * past it. */
static void read_value(const char **p, struct buf *out)
{
    const char *s = *p;

    if (*s != '"') {
        size_t len = strcspn(s, " \n");
        fuzz_require(buf_append(out, s, len), "out of memory");
        *p = s + len;
        return;
    }
    for (s++; *s && *s != '"'; s++) {
        char c = *s;
        if (c == '\\') {
            c = *++s;
            if (c == 'n') {
                c = '\n';
            } else if (c == 'x') {
                c = (char)strtol((char[3]){s[1], s[2], '\0'}, NULL, 16);
                s += 2;
            }
        }
        fuzz_require(buf_append(out, &c, 1), "out of memory");
    }
    fuzz_require(*s == '"', "unterminated value");
    *p = s + 1;
}

/* The logged value of key, after "event=config", is expected. */
static void check_logged(const char *line, const char *key, const char *expected)
{
    char field[64];
    const char *p = strstr(line, " event=config ");
    struct buf value = {0};

    snprintf(field, sizeof field, " %s=", key);
    fuzz_require(p != NULL, "no config line: '%s'", line);
    /* Walk field by field: a value may hold " KEY=" itself. */
    for (p += strlen(" event=config"); *p == ' ';) {
        bool wanted = strncmp(p, field, strlen(field)) == 0;

        p = strchr(p, '=') + 1;
        buf_reset(&value);
        read_value(&p, &value);
        if (wanted) {
            fuzz_require(strcmp(value.data, expected) == 0, "%s logged as '%s', masked is '%s'",
                         key, value.data, expected);
            buf_free(&value);
            return;
        }
    }
    fuzz_require(false, "%s not logged: '%s'", key, line);
}

static void check_log(const struct config *cfg)
{
    static int pipe_fds[2] = {-1, -1};
    char line[LOG_LINE_MAX + 1], masked[512];
    ssize_t len;

    if (pipe_fds[0] < 0) {
        fuzz_require(pipe(pipe_fds) == 0, "no pipe");
        fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
        log_set_fd(pipe_fds[1]);
    }
    config_log_effective(cfg);
    len = read(pipe_fds[0], line, sizeof line - 1);
    fuzz_require(len > 0, "nothing logged");
    line[len] = '\0';
    fuzz_require(memchr(line, '\n', (size_t)len - 1) == NULL && line[len - 1] == '\n',
                 "not one line: '%s'", line);
    fuzz_require(memchr(line, '\0', (size_t)len) == NULL, "a NUL byte logged");
    if ((size_t)len >= LOG_LINE_MAX - 2)
        return; /* cut: the values at the end are not all there */
    mq_url_list_mask(cfg->amqp_url, masked, sizeof masked, NULL, 0);
    check_logged(line, "AMQP_URL", masked);
    if (cfg->database_url != NULL) {
        db_url_mask(cfg->database_url, masked, sizeof masked, NULL, 0);
        check_logged(line, "DATABASE_URL", masked);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum config_program programs[4] = {PROGRAM_WORKER, PROGRAM_PRODUCER,
                                                    PROGRAM_REPLIES, PROGRAM_ADMIN};
    struct fuzz_input in;
    struct config cfg;
    struct config_urls urls = {mq_url_list_mask, NULL};
    char *argv[MAX_ARGV + 1], err[512];
    int argc = 1;
    unsigned char head;
    enum config_program program;
    enum config_status status;

    fuzz_input_init(&in, data, size);
    head = fuzz_byte(&in);
    program = programs[head & 3];
    if (program == PROGRAM_WORKER || program == PROGRAM_ADMIN)
        urls.database = db_url_mask;
    environment_count = (size_t)(head >> 2) % (MAX_ENV + 1);
    for (size_t i = 0; i < environment_count; i++)
        environment[i] = fuzz_string(&in);
    argv[0] = "greet";
    while (argc < MAX_ARGV && fuzz_input_left(&in))
        argv[argc++] = (char *)fuzz_string(&in);
    argv[argc] = NULL;

    err[0] = '\0';
    status = config_load(&cfg, program, &urls, argc, argv, fake_getenv, err, sizeof err);
    switch (status) {
    case CONFIG_OK:
        check_valid(&cfg);
        check_log(&cfg);
        break;
    case CONFIG_ERROR:
        fuzz_require(err[0] != '\0', "refused without a reason");
        check_url_error(err, "AMQP_URL (--amqp-url)", urls.amqp, cfg.amqp_url);
        check_url_error(err, "DATABASE_URL (--database-url)", urls.database, cfg.database_url);
        break;
    case CONFIG_HELP:
    case CONFIG_VERSION:
        break;
    }
    config_free(&cfg);
    fuzz_input_free(&in);
    return 0;
}
