/* jobsource.c - producer input to job bodies; see jobsource.h. */
#include "jobsource.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void jobsource_make_id(char *out, size_t outlen, const char *prefix, unsigned long long seq)
{
    snprintf(out, outlen, "%s-%llu", prefix, seq);
}

/* Serialises obj into out, then checks it as the worker will. */
static bool finish(json_t *obj, struct buf *out, char *job_id, size_t job_id_len, char *err,
                   size_t errlen)
{
    struct job job;
    char detail[256];
    char *text;
    enum job_status status;

    buf_reset(out);
    text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (text == NULL || !buf_append_str(out, text)) {
        free(text);
        snprintf(err, errlen, "out of memory");
        return false;
    }
    free(text);
    status = job_decode(out->data, out->len, &job, detail, sizeof detail);
    if (status != JOB_OK) {
        snprintf(err, errlen, "%s", detail);
        return false;
    }
    if (job_id != NULL)
        snprintf(job_id, job_id_len, "%s", job.job_id);
    return true;
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

bool jobsource_from_fields(const char *job_id, long long user_id, const char *name, struct buf *out,
                           char *err, size_t errlen)
{
    json_t *obj = json_object();

    if (obj == NULL || json_object_set_new(obj, "job_id", json_string(job_id)) ||
        (user_id > 0 && json_object_set_new(obj, "user_id", json_integer(user_id))) ||
        (name != NULL && json_object_set_new(obj, "name", json_string(name)))) {
        json_decref(obj);
        snprintf(err, errlen, "job_id and name must be valid UTF-8");
        return false;
    }
    return finish(obj, out, NULL, 0, err, errlen);
}
