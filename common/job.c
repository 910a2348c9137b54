/* job.c - greet job decoding and validation; see job.h. */
#include "job.h"

#include "utf8.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
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
    json_t *token = json_object_get(root, "token");

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

    if (json_is_string(token)) {
        job->token_len = json_string_length(token);
        job->token_state = JOB_TOKEN_TOO_LONG;
        if (job->token_len <= JOB_TOKEN_MAX) {
            memcpy(job->token, json_string_value(token), job->token_len);
            job->token[job->token_len] = '\0';
            job->token_state = JOB_TOKEN_STRING;
        }
    } else if (token != NULL && !json_is_null(token)) {
        job->token_state = JOB_TOKEN_NOT_STRING;
    }
    return JOB_OK;
}

/* jansson refuses a whole document for one number it cannot hold (an
 * integer past 64 bits, a real past DBL_MAX), yet a key the job does not
 * use must be ignored whatever it holds.  So, on that error only, the
 * body is parsed again with every such number replaced by [] padded with
 * spaces to the same width: error positions stay those of the body; []
 * is as invalid as the number wherever the job reads a value (user_id
 * wants an integer, job_id and name strings); and, unlike a number, it
 * cannot run into a neighbouring token ("2-1e400" stays invalid).
 * Decoding every integer as a real instead (JSON_DECODE_INT_AS_REAL)
 * would cost user_id its exactness past 2^53 and still refuse 1e400. */
#define HUGE_PLACEHOLDER "[]"

static size_t skip_digits(const char *s, size_t i, size_t len)
{
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* The length of the JSON number token at s[start..len), or 0 when there
 * is none there; *is_real tells a fraction or exponent. */
static size_t number_token(const char *s, size_t start, size_t len, bool *is_real)
{
    size_t i = start, digits;

    *is_real = false;
    if (i < len && s[i] == '-')
        i++;
    digits = i;
    i = skip_digits(s, i, len);
    if (i == digits || (s[digits] == '0' && i - digits > 1))
        return 0; /* no digits, or a leading zero: not JSON */
    if (i < len && s[i] == '.') {
        size_t frac = i + 1;
        i = skip_digits(s, frac, len);
        if (i == frac)
            return 0;
        *is_real = true;
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        size_t exp = i + 1;
        if (exp < len && (s[exp] == '+' || s[exp] == '-'))
            exp++;
        i = skip_digits(s, exp, len);
        if (i == exp)
            return 0;
        *is_real = true;
    }
    return i - start;
}

/* Whether jansson overflows on the token s[0..n), which is followed by a
 * byte that may be overwritten for the while (copy holds a NUL at len). */
static bool token_overflows(char *s, size_t n, bool is_real)
{
    char saved = s[n];
    bool overflows;

    s[n] = '\0';
    errno = 0;
    if (is_real) {
        double value = strtod(s, NULL);
        overflows = errno == ERANGE && isinf(value);
    } else {
        (void)strtoll(s, NULL, 10);
        overflows = errno == ERANGE;
    }
    s[n] = saved;
    return overflows;
}

/* Replaces, in text[0..len) (NUL-terminated), every number outside a
 * string that jansson cannot hold. */
static void replace_huge_numbers(char *text, size_t len)
{
    size_t i = 0;

    while (i < len) {
        bool is_real;
        size_t n;

        if (text[i] == '"') {
            for (i++; i < len && text[i] != '"'; i++)
                if (text[i] == '\\')
                    i++;
            i++;
            continue;
        }
        if (text[i] != '-' && (text[i] < '0' || text[i] > '9')) {
            i++;
            continue;
        }
        n = number_token(text, i, len, &is_real);
        if (n == 0) {
            i++; /* not a number: jansson will say so */
            continue;
        }
        /* A number that overflows is never shorter than the placeholder. */
        if (n >= sizeof HUGE_PLACEHOLDER - 1 && token_overflows(text + i, n, is_real)) {
            memset(text + i, ' ', n);
            memcpy(text + i, HUGE_PLACEHOLDER, sizeof HUGE_PLACEHOLDER - 1);
        }
        i += n;
    }
}

/* json_loadb, except that a number out of jansson's range does not fail
 * the document (see above). */
static json_t *load_json(const char *body, size_t len, size_t flags, json_error_t *error)
{
    json_t *root = json_loadb(body, len, flags, error);
    char *copy;

    if (root != NULL || json_error_code(error) != json_error_numeric_overflow)
        return root;
    copy = malloc(len + 1);
    if (copy == NULL)
        return NULL; /* error still tells the overflow */
    memcpy(copy, body, len);
    copy[len] = '\0';
    replace_huge_numbers(copy, len);
    root = json_loadb(copy, len, flags, error);
    free(copy);
    return root;
}

/* An oversized job is still answered with its job_id when one can be read;
 * past JOB_ID_SCAN_MAX the body is not parsed at all, so a huge message
 * costs no more than its copy. */
#define JOB_ID_SCAN_MAX (16 * JOB_BODY_MAX)

static void read_job_id_of_large(const char *body, size_t len, struct job *job)
{
    char ignored[256];
    json_error_t error;
    json_t *root;

    if (len > JOB_ID_SCAN_MAX)
        return;
    /* The flags of job_decode() but JSON_DECODE_ANY (only an object has a
     * job_id): a "\u0000" elsewhere must not lose it. */
    root = load_json(body, len, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &error);
    if (json_is_object(root) && json_object_get(root, "job_id") != NULL)
        check_string_field(json_object_get(root, "job_id"), "job_id", JOB_ID_MAX_CHARS, job->job_id,
                           sizeof job->job_id, ignored, sizeof ignored);
    json_decref(root);
}

/* jansson's error text without the "near '...'" it ends with: that is
 * the token the parser stopped in, up to ~130 bytes of the body, which
 * may be a JWT.  The line and column say where. */
static const char *error_without_quote(char *text)
{
    char *near = strstr(text, " near '");

    if (near != NULL)
        *near = '\0';
    return text;
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
    root = load_json(body, len, JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &error);
    if (root == NULL) {
        /* Only when the copy for load_json could not be made. */
        if (json_error_code(&error) == json_error_numeric_overflow) {
            snprintf(detail, detail_len, "a number in the job is out of range (line %d, column %d)",
                     error.line, error.column);
            return JOB_INVALID_JOB;
        }
        snprintf(detail, detail_len, "body is not valid JSON: %s (line %d, column %d)",
                 error_without_quote(error.text), error.line, error.column);
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
