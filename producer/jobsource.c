/* jobsource.c - producer input to job bodies; see jobsource.h. */
#include "jobsource.h"

#include "jsonw.h"
#include "utf8.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jobsource_make_id(char *out, size_t outlen, const char *prefix, unsigned long long seq)
{
    snprintf(out, outlen, "%s-%llu", prefix, seq);
}

bool jobsource_write(struct buf *out, const char *job_id, long long user_id, const char *name)
{
    buf_reset(out);
    return buf_append_str(out, "{\"job_id\":") && jsonw_string(out, job_id) &&
           (user_id <= 0 || (buf_append_str(out, ",\"user_id\":") && jsonw_int(out, user_id))) &&
           (name == NULL || (buf_append_str(out, ",\"name\":") && jsonw_string(out, name))) &&
           buf_append(out, "}", 1);
}

bool jobsource_add_token(struct buf *body, const char *token)
{
    size_t end = body->len;
    bool empty;

    /* jsonw and jansson's compact dump end an object at its last byte. */
    while (end > 0 && strchr(" \t\r\n", body->data[end - 1]) != NULL)
        end--;
    if (end < 2 || body->data[0] != '{' || body->data[end - 1] != '}')
        return false;
    empty = strspn(body->data + 1, " \t\r\n") == end - 2;
    body->len = end - 1;
    return buf_append_str(body, empty ? "\"token\":" : ",\"token\":") &&
           jsonw_string(body, token) && buf_append(body, "}", 1);
}

/* Checks the body in out as the worker will. */
static bool check_body(const struct buf *out, char *job_id, size_t job_id_len, char *err,
                       size_t errlen)
{
    struct job job;
    char detail[256];
    enum job_status status;

    status = job_decode(out->data, out->len, &job, detail, sizeof detail);
    if (status != JOB_OK) {
        snprintf(err, errlen, "%s", detail);
        return false;
    }
    if (job_id != NULL)
        snprintf(job_id, job_id_len, "%s", job.job_id);
    return true;
}

/* Serialises obj (an input line's object: any shape) into out, then
 * checks it. */
static bool finish(json_t *obj, struct buf *out, char *job_id, size_t job_id_len, char *err,
                   size_t errlen)
{
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);

    json_decref(obj);
    buf_reset(out);
    if (text == NULL || !buf_append_str(out, text)) {
        free(text);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    free(text);
    return check_body(out, job_id, job_id_len, err, errlen);
}

bool jobsource_from_line(const char *line, size_t len, const char *generated_id, struct buf *out,
                         char *job_id, size_t job_id_len, char *err, size_t errlen)
{
    json_error_t error;
    json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES, &error);

    if (obj == NULL) {
        snprintf(err, errlen, "not valid JSON: %s (column %d)", error.text, error.column);
        return false;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        snprintf(err, errlen, "a job must be a JSON object");
        return false;
    }
    if (json_object_get(obj, "job_id") == NULL &&
        json_object_set_new(obj, "job_id", json_string(generated_id))) {
        json_decref(obj);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return finish(obj, out, job_id, job_id_len, err, errlen);
}

static bool is_utf8(const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    size_t left = strlen(text);

    while (left > 0) {
        unsigned long cp;
        unsigned n = utf8_next(p, left, &cp);
        if (n == 0)
            return false;
        p += n;
        left -= n;
    }
    return true;
}

bool jobsource_from_fields(const char *job_id, long long user_id, const char *name, struct buf *out,
                           char *err, size_t errlen)
{
    /* jsonw would write U+FFFD for a bad byte: refuse it instead. */
    if (!is_utf8(job_id) || (name != NULL && !is_utf8(name))) {
        snprintf(err, errlen, "job_id and name must be valid UTF-8");
        return false;
    }
    if (!jobsource_write(out, job_id, user_id, name)) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return check_body(out, NULL, 0, err, errlen);
}
