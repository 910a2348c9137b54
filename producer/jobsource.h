/* jobsource.h - turning the producer's input into job bodies (pure).
 * Jobs of a fixed shape (from flags, synthetic) are written with jsonw;
 * lines of a file, which may hold any keys, are re-serialised by jansson.
 *
 * A line of a JSON-lines file is a job object; job_id may be left out and
 * is then generated.  Every job is checked with the worker's own rules
 * (job_decode) before anything is sent, so a bad file is refused whole. */
#ifndef GREET_JOBSOURCE_H
#define GREET_JOBSOURCE_H

#include "buf.h"
#include "job.h"

#include <stdbool.h>
#include <stddef.h>

/* A generated job_id: "<prefix>-<seq>", unique per run when prefix is. */
void jobsource_make_id(char *out, size_t outlen, const char *prefix, unsigned long long seq);

/* One input line (no newline) to a body in out; job_id receives the id.
 * false with err filled when the line is not a valid job. */
bool jobsource_from_line(const char *line, size_t len, const char *generated_id, struct buf *out,
                         char *job_id, size_t job_id_len, char *err, size_t errlen);

/* A job from flags: user_id 0 means none, name NULL means none. */
bool jobsource_from_fields(const char *job_id, long long user_id, const char *name, struct buf *out,
                           char *err, size_t errlen);

/* The same body, written into out unchecked: the synthetic load's fast
 * path, for job_ids known to be valid.  false when out cannot grow. */
bool jobsource_write(struct buf *out, const char *job_id, long long user_id, const char *name);

/* Adds "token": token as the last key of body, a job (a JSON object) with
 * no "token" key yet.  false when body is not an object, or cannot grow. */
bool jobsource_add_token(struct buf *body, const char *token);

#endif
