/* log.c - logfmt lines on stdout; see log.h. */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;
static const char *program_name = "greet";
static int log_fd = STDOUT_FILENO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *program, enum log_level level)
{
    program_name = program;
    min_level = level;
}

void log_set_fd(int fd)
{
    log_fd = fd;
}

bool log_level_parse(const char *name, enum log_level *level)
{
    for (unsigned i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *level = (enum log_level)i;
            return true;
        }
    }
    return false;
}

bool log_enabled(enum log_level level)
{
    return level >= min_level;
}

/* Room kept at the end of the buffer for the newline. */
#define LOG_RESERVE 2

static void put_char(struct log_line *line, char c)
{
    if (line->len + LOG_RESERVE < LOG_LINE_MAX)
        line->buf[line->len++] = c;
}

static void put_raw(struct log_line *line, const char *s)
{
    while (*s)
        put_char(line, *s++);
}

static bool needs_quotes(const char *value, unsigned len)
{
    if (len == 0)
        return true;
    for (unsigned i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f)
            return true;
    }
    return false;
}

static void put_value(struct log_line *line, const char *value, unsigned len)
{
    static const char hex[] = "0123456789abcdef";
    bool quoted = needs_quotes(value, len);

    if (quoted)
        put_char(line, '"');
    for (unsigned i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];
        if (c == '"' || c == '\\') {
            put_char(line, '\\');
            put_char(line, (char)c);
        } else if (c == '\n') {
            put_raw(line, "\\n");
        } else if (c < ' ' || c == 0x7f) {
            put_raw(line, "\\x");
            put_char(line, hex[c >> 4]);
            put_char(line, hex[c & 15]);
        } else {
            put_char(line, (char)c);
        }
    }
    if (quoted)
        put_char(line, '"');
}

static void put_key(struct log_line *line, const char *key)
{
    put_char(line, ' ');
    put_raw(line, key);
    put_char(line, '=');
}

void log_begin(struct log_line *line, enum log_level level, const char *event)
{
    struct timeval now;
    struct tm utc;
    char stamp[40];

    line->len = 0;
    line->enabled = log_enabled(level);
    if (!line->enabled)
        return;
    gettimeofday(&now, NULL);
    gmtime_r(&now.tv_sec, &utc);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    line->len = (unsigned)snprintf(
        line->buf, sizeof line->buf, "ts=%s.%03ldZ level=%s app=%s pid=%ld event=", stamp,
        (long)(now.tv_usec / 1000), level_names[level], program_name, (long)getpid());
    put_value(line, event, (unsigned)strlen(event));
}

void log_strn(struct log_line *line, const char *key, const char *value, unsigned len)
{
    if (!line->enabled)
        return;
    put_key(line, key);
    if (value == NULL)
        put_raw(line, "null");
    else
        put_value(line, value, len);
}

void log_str(struct log_line *line, const char *key, const char *value)
{
    log_strn(line, key, value, value ? (unsigned)strlen(value) : 0);
}

void log_int(struct log_line *line, const char *key, long long value)
{
    char digits[32];

    if (!line->enabled)
        return;
    snprintf(digits, sizeof digits, "%lld", value);
    put_key(line, key);
    put_raw(line, digits);
}

void log_double(struct log_line *line, const char *key, double value)
{
    char digits[48];

    if (!line->enabled)
        return;
    snprintf(digits, sizeof digits, "%.3f", value);
    put_key(line, key);
    put_raw(line, digits);
}

void log_end(struct log_line *line)
{
    const char *p = line->buf;
    unsigned left;

    if (!line->enabled)
        return;
    line->buf[line->len++] = '\n';
    left = line->len;
    /* A failed write of a log line has nowhere better to be reported. */
    while (left > 0) {
        ssize_t n = write(log_fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        left -= (unsigned)n;
    }
}

void log_msg(enum log_level level, const char *event, const char *msg)
{
    struct log_line line;

    log_begin(&line, level, event);
    log_str(&line, "msg", msg);
    log_end(&line);
}
