/* fuzz_job.c - the job decoder on any bytes.
 *
 * What the decoder must answer is worked out here, apart from job.c, from
 * jansson's reading of the body and the contract's rules (job.h): the
 * status, the job_id (also in an invalid job, for its error reply), the
 * user_id and the name must be those.  A number too big for jansson is
 * found by jansson's own lexer (where its error points), not by job.c's
 * scanner.  And: detail is empty exactly when the job is valid, the same
 * body decodes the same way twice (a redelivered job's error reply is
 * byte-identical), and the body padded past JOB_BODY_MAX is too_large but
 * still answered with the job_id it had. */
#include "fuzz.h"
#include "job.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The contract's text rule: 1..max_chars characters, none a control
 * character (C0, DEL, C1).  s is UTF-8, as jansson checked; it may hold
 * NUL, itself a control character. */
static bool text_ok(const char *s, size_t len, size_t max_chars)
{
    size_t chars = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f)
            return false;
        if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] <= 0x9f)
            return false; /* U+0080..U+009F */
        if ((c & 0xc0) != 0x80)
            chars++;
    }
    return chars >= 1 && chars <= max_chars;
}

static bool string_ok(json_t *value, size_t max_chars)
{
    return json_is_string(value) &&
           text_ok(json_string_value(value), json_string_length(value), max_chars);
}

static size_t digits(const char *s, size_t i, size_t end)
{
    while (i < end && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* Whether s[start..end) is one JSON number, by RFC 8259's grammar:
 * -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static bool is_number_token(const char *s, size_t start, size_t end)
{
    size_t i = start, from;

    if (i < end && s[i] == '-')
        i++;
    if (i < end && s[i] == '0')
        i++;
    else if (i < end && s[i] >= '1' && s[i] <= '9')
        i = digits(s, i, end);
    else
        return false;
    if (i < end && s[i] == '.') {
        from = i + 1;
        if ((i = digits(s, from, end)) == from)
            return false;
    }
    if (i < end && (s[i] == 'e' || s[i] == 'E')) {
        from = i + 1;
        if (from < end && (s[from] == '+' || s[from] == '-'))
            from++;
        if ((i = digits(s, from, end)) == from)
            return false;
    }
    return i == end;
}

/* The number jansson stopped at ends where error->position points, in a
 * count of bytes that leaves out a NUL byte after a number (jansson drops
 * one there, and parses on).  It starts at the earliest place from which
 * it is still one number (jansson reads numbers greedily, and no two
 * numbers run together into one).  Replaced by [] and spaces, which every
 * job field refuses as it refuses the number. */
static bool neutralize(char *s, size_t len, const json_error_t *error)
{
    size_t end = 0, start, counted = 0;

    while (end < len && counted < (size_t)error->position)
        counted += s[end++] != '\0';
    start = end;

    while (start > 0 && s[start - 1] != '\0' && strchr("0123456789+-.eE", s[start - 1]) != NULL)
        start--;
    for (; start + 1 < end; start++) {
        if (is_number_token(s, start, end)) {
            memset(s + start, ' ', end - start);
            memcpy(s + start, "[]", 2);
            return true;
        }
    }
    return false;
}

/* The contract's answer for body[0..len), len <= JOB_BODY_MAX. */
static enum job_status expected_decode(const uint8_t *body, size_t len, struct job *job)
{
    const size_t flags = JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES;
    char *text = malloc(len + 1);
    json_error_t error;
    json_t *root, *job_id, *user_id, *name;
    enum job_status status = JOB_INVALID_JOB;

    memset(job, 0, sizeof *job);
    fuzz_require(text != NULL, "out of memory");
    memcpy(text, body, len);
    text[len] = '\0';
    root = json_loadb(text, len, flags, &error);
    while (root == NULL && json_error_code(&error) == json_error_numeric_overflow) {
        fuzz_require(neutralize(text, len, &error), "no number ends at %d: %s", error.position,
                     error.text);
        root = json_loadb(text, len, flags, &error);
    }
    free(text);
    if (root == NULL)
        return JOB_INVALID_JSON;

    job_id = json_object_get(root, "job_id");
    user_id = json_object_get(root, "user_id");
    name = json_object_get(root, "name");
    if (!json_is_object(root) || !string_ok(job_id, JOB_ID_MAX_CHARS))
        goto done;
    memcpy(job->job_id, json_string_value(job_id), json_string_length(job_id));
    if (user_id != NULL && !json_is_null(user_id)) {
        if (!json_is_integer(user_id) || json_integer_value(user_id) < 1)
            goto done;
        job->has_user_id = true;
        job->user_id = json_integer_value(user_id);
    }
    if (name != NULL && !json_is_null(name)) {
        if (!string_ok(name, JOB_NAME_MAX_CHARS))
            goto done;
        job->has_name = true;
        memcpy(job->name, json_string_value(name), json_string_length(name));
    }
    status = JOB_OK;
done:
    json_decref(root);
    return status;
}

/* The body and spaces up to one byte past the limit: still JSON, and
 * too large; its job_id is read all the same. */
static void check_too_large(const uint8_t *data, size_t size, const struct job *small)
{
    size_t len = JOB_BODY_MAX + 1;
    char *body = malloc(len), detail[256];
    struct job job;

    fuzz_require(body != NULL, "out of memory");
    memcpy(body, data, size);
    memset(body + size, ' ', len - size);
    fuzz_require(job_decode(body, len, &job, detail, sizeof detail) == JOB_TOO_LARGE,
                 "a padded body is not too_large");
    fuzz_require(strstr(detail, "65537 bytes") != NULL, "too_large detail '%s'", detail);
    fuzz_require(strcmp(job.job_id, small->job_id) == 0,
                 "padded past the limit, job_id '%s' became '%s'", small->job_id, job.job_id);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct job job, again, expected;
    char detail[256], detail_again[256];
    enum job_status status, status_again, want;

    if (size > JOB_BODY_MAX)
        return 0;
    status = job_decode((const char *)data, size, &job, detail, sizeof detail);
    want = expected_decode(data, size, &expected);
    fuzz_require(status == want, "status %s, the contract says %s (%s)", job_status_code(status),
                 job_status_code(want), detail);
    fuzz_require(strcmp(job.job_id, expected.job_id) == 0, "job_id '%s', expected '%s'", job.job_id,
                 expected.job_id);
    fuzz_require((detail[0] == '\0') == (status == JOB_OK), "detail '%s' for %s", detail,
                 job_status_code(status));
    if (status == JOB_OK) {
        fuzz_require(job.has_user_id == expected.has_user_id && job.user_id == expected.user_id,
                     "user_id %lld, expected %lld", job.user_id, expected.user_id);
        fuzz_require(job.has_name == expected.has_name && strcmp(job.name, expected.name) == 0,
                     "name '%s', expected '%s'", job.name, expected.name);
    }

    status_again = job_decode((const char *)data, size, &again, detail_again, sizeof detail_again);
    fuzz_require(status_again == status && strcmp(detail, detail_again) == 0 &&
                     memcmp(&job, &again, sizeof job) == 0,
                 "the same body decoded differently");

    /* Padding costs a 64 KiB parse: only where there is a job_id to keep
     * (the oversized path is the stricter, it cannot find one more). */
    if (job.job_id[0] != '\0')
        check_too_large(data, size, &job);
    return 0;
}
