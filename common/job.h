/* job.h - decoding and validating a greet job (pure: bytes in, struct out).
 *
 * The rules are the contract's ("A job"): a JSON object of at most 64 KiB,
 * job_id a string of 1..128 characters, user_id an integer >= 1, name a
 * string of 1..200 characters; no control characters; other keys ignored.
 * null for an optional field means "not given". */
#ifndef GREET_JOB_H
#define GREET_JOB_H

#include <stdbool.h>
#include <stddef.h>

#define JOB_BODY_MAX       65536
#define JOB_ID_MAX_CHARS   128
#define JOB_NAME_MAX_CHARS 200
/* The optional "token" (token.h) is kept up to this many bytes. */
#define JOB_TOKEN_MAX 8192

/* What the job's "token" key held.  The contract ignores keys it does
 * not name, so whatever it holds never makes a job invalid; a worker
 * that verifies tokens (GREET_AUTH=jwt) judges it. */
enum job_token {
    JOB_TOKEN_NONE,       /* absent or null */
    JOB_TOKEN_STRING,     /* in token[0..token_len) */
    JOB_TOKEN_TOO_LONG,   /* a string of token_len > JOB_TOKEN_MAX bytes, not kept */
    JOB_TOKEN_NOT_STRING, /* a number, an object... */
};

enum job_status {
    JOB_OK,
    JOB_INVALID_JSON,
    JOB_INVALID_JOB,
    JOB_TOO_LARGE,
};

struct job {
    /* Set whenever a valid job_id could be read, even if the job is
     * otherwise invalid: error replies carry it.  "" when not. */
    char job_id[JOB_ID_MAX_CHARS * 4 + 1];
    bool has_user_id;
    long long user_id;
    bool has_name;
    char name[JOB_NAME_MAX_CHARS * 4 + 1];
    enum job_token token_state;
    size_t token_len;
    char token[JOB_TOKEN_MAX + 1]; /* NUL-terminated; may hold a NUL of its own */
};

/* Fills job and returns JOB_OK, or returns the failure with a sentence in
 * detail that depends only on the body (error replies must be
 * byte-identical when a job is redelivered). */
enum job_status job_decode(const char *body, size_t len, struct job *job, char *detail,
                           size_t detail_len);

/* The contract's error code: "invalid_json", "invalid_job", "too_large". */
const char *job_status_code(enum job_status status);

/* A job_id/name check on its own, for the producer's flags: NULL when the
 * string is acceptable, else what is wrong with it. */
const char *job_check_text(const char *text, size_t len, size_t max_chars);

#endif
