/* job.c - greet job decoding and validation; see job.h. */
#include "job.h"

#include "utf8.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

const char *job_status_code(enum job_status status)
{
    switch (status) {
    case JOB_OK:
        return "ok";
    case JOB_INVALID_JSON:
        return "invalid_json";
    case JOB_INVALID_JOB:
        return "invalid_job";
    case JOB_TOO_LARGE:
        return "too_large";
    }
    return "invalid_job";
}

const char *job_check_text(const char *text, size_t len, size_t max_chars)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t chars = 0;

    if (len == 0)
        return "is empty";
    while (len > 0) {
        unsigned long cp;
        unsigned n = utf8_next(s, len, &cp);
        if (n == 0)
            return "is not valid UTF-8";
        if (utf8_is_control(cp))
            return "contains a control character";
        chars++;
        s += n;
        len -= n;
    }
    if (chars > max_chars)
        return "is too long";
    return NULL;
}

static size_t utf8_chars(const char *text, size_t len)
{
    size_t chars = 0;

    for (size_t i = 0; i < len; i++)
        if (((unsigned char)text[i] & 0xc0) != 0x80)
            chars++;
    return chars;
}

/* Checks a string field; copies it into out (out_size bytes) when valid. */
static bool check_string_field(json_t *value, const char *field, size_t max_chars, char *out,
                               size_t out_size, char *detail, size_t detail_len)
{
    const char *text;
    size_t len, chars;
    const char *problem;

    if (!json_is_string(value)) {
        snprintf(detail, detail_len, "%s must be a string", field);
        return false;
    }
    text = json_string_value(value);
    len = json_string_length(value);
    chars = utf8_chars(text, len);
    problem = job_check_text(text, len, max_chars);
    if (problem != NULL) {
        if (chars == 0 || chars > max_chars)
            snprintf(detail, detail_len, "%s must be 1 to %zu characters, got %zu", field,
                     max_chars, chars);
        else
            snprintf(detail, detail_len, "%s %s", field, problem);
        return false;
    }
    /* max_chars characters of at most 4 bytes each always fit. */
    if (len >= out_size) {
        snprintf(detail, detail_len, "%s is too long", field);
        return false;
    }
    memcpy(out, text, len);
    out[len] = '\0';
    return true;
}

static enum job_status decode_object(json_t *root, struct job *job, char *detail, size_t detail_len)
{
    json_t *job_id = json_object_get(root, "job_id");
    json_t *user_id = json_object_get(root, "user_id");
    json_t *name = json_object_get(root, "name");

    if (job_id == NULL) {
        snprintf(detail, detail_len, "job_id is required");
        return JOB_INVALID_JOB;
    }
    if (!check_string_field(job_id, "job_id", JOB_ID_MAX_CHARS, job->job_id, sizeof job->job_id,
                            detail, detail_len))
        return JOB_INVALID_JOB;

    if (user_id != NULL && !json_is_null(user_id)) {
        if (!json_is_integer(user_id) || json_integer_value(user_id) < 1) {
            snprintf(detail, detail_len, "user_id must be an integer >= 1");
            return JOB_INVALID_JOB;
        }
        job->has_user_id = true;
        job->user_id = json_integer_value(user_id);
    }

    if (name != NULL && !json_is_null(name)) {
        if (!check_string_field(name, "name", JOB_NAME_MAX_CHARS, job->name, sizeof job->name,
                                detail, detail_len))
            return JOB_INVALID_JOB;
        job->has_name = true;
    }
    return JOB_OK;
}

/* An oversized job is still answered with its job_id when one can be read;
 * past JOB_ID_SCAN_MAX the body is not parsed at all, so a huge message
 * costs no more than its copy. */
#define JOB_ID_SCAN_MAX (16 * JOB_BODY_MAX)

static void read_job_id_of_large(const char *body, size_t len, struct job *job)
{
    char ignored[256];
    json_t *root;

    if (len > JOB_ID_SCAN_MAX)
        return;
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(root) && json_object_get(root, "job_id") != NULL)
        check_string_field(json_object_get(root, "job_id"), "job_id", JOB_ID_MAX_CHARS, job->job_id,
                           sizeof job->job_id, ignored, sizeof ignored);
    json_decref(root);
}

enum job_status job_decode(const char *body, size_t len, struct job *job, char *detail,
                           size_t detail_len)
{
    json_error_t error;
    json_t *root;
    enum job_status status;

    memset(job, 0, sizeof *job);
    detail[0] = '\0';

    if (len > JOB_BODY_MAX) {
        snprintf(detail, detail_len, "body is %zu bytes; a job is at most %d bytes", len,
                 JOB_BODY_MAX);
        read_job_id_of_large(body, len, job);
        return JOB_TOO_LARGE;
    }

    /* JSON_DECODE_ANY: "42" is JSON, just not a job (invalid_job).
     * JSON_ALLOW_NUL lets "\u0000" through the parser so that validation
     * reports it as the control character it is, with the job_id. */
    root = json_loadb(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &error);
    if (root == NULL) {
        if (json_error_code(&error) == json_error_numeric_overflow) {
            snprintf(detail, detail_len, "a number in the job is out of range (line %d, column %d)",
                     error.line, error.column);
            return JOB_INVALID_JOB;
        }
        snprintf(detail, detail_len, "body is not valid JSON: %s (line %d, column %d)", error.text,
                 error.line, error.column);
        return JOB_INVALID_JSON;
    }
    if (!json_is_object(root)) {
        snprintf(detail, detail_len, "body must be a JSON object");
        json_decref(root);
        return JOB_INVALID_JOB;
    }
    status = decode_object(root, job, detail, detail_len);
    json_decref(root);
    return status;
}
