/* log.h - one logfmt line per event on stdout.
 *
 * A line is built field by field, then written with one write(2) so lines
 * from concurrent processes sharing a terminal or pipe never interleave:
 *
 *     struct log_line line;
 *     log_begin(&line, LOG_WARN, "reply.unroutable");
 *     log_str(&line, "job_id", job_id);
 *     log_end(&line);
 *
 * Values are quoted and escaped as logfmt needs; a line longer than the
 * buffer is cut, never overflowed. */
#ifndef GREET_LOG_H
#define GREET_LOG_H

#include <stdbool.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

#define LOG_LINE_MAX 2048

struct log_line {
    char buf[LOG_LINE_MAX];
    unsigned len;
    bool enabled;
};

/* Process-wide settings, made once at start-up by main(). */
void log_init(const char *program, enum log_level level);
/* Where lines go: stdout by default; programs whose stdout carries data
 * (the producer, the subscriber) log to stderr. */
void log_set_fd(int fd);
bool log_level_parse(const char *name, enum log_level *level);
bool log_enabled(enum log_level level);

/* Building and writing one line. */
void log_begin(struct log_line *line, enum log_level level, const char *event);
void log_str(struct log_line *line, const char *key, const char *value);
void log_strn(struct log_line *line, const char *key, const char *value, unsigned len);
void log_int(struct log_line *line, const char *key, long long value);
void log_double(struct log_line *line, const char *key, double value);
void log_end(struct log_line *line);

/* One-field shorthand for the common "event plus a message" case. */
void log_msg(enum log_level level, const char *event, const char *msg);

#endif
