/* dead.c - decisions about dead jobs; see dead.h. */
#include "dead.h"

#include <jansson.h>
#include <string.h>

static bool present(const char *s)
{
    return s != NULL && s[0] != '\0';
}

const char *dead_how(const char *greet_error, const char *death_reason)
{
    if (present(greet_error))
        return strcmp(greet_error, "reply_refused") == 0 ? "reply_refused" : "poison";
    if (present(death_reason))
        return death_reason;
    return "unknown";
}

bool dead_job_id(const char *body, size_t body_len, const char *message_id, struct buf *out)
{
    json_t *doc = json_loadb(body, body_len, 0, NULL);
    json_t *id = json_is_object(doc) ? json_object_get(doc, "job_id") : NULL;
    bool found = false;

    buf_reset(out);
    if (json_is_string(id) && json_string_length(id) > 0)
        found = buf_append(out, json_string_value(id), json_string_length(id));
    else if (present(message_id))
        found = buf_append_str(out, message_id);
    json_decref(doc);
    return found;
}

bool dead_matches(const struct dead_filter *filter, const char *job_id, const char *greet_error,
                  const char *how)
{
    if (filter->error != NULL &&
        !(greet_error != NULL && strcmp(filter->error, greet_error) == 0) &&
        strcmp(filter->error, how) != 0)
        return false;
    if (filter->job_id != NULL && (job_id == NULL || strcmp(filter->job_id, job_id) != 0))
        return false;
    return true;
}

static bool key_is(const char *key, size_t len, const char *name)
{
    return len == strlen(name) && memcmp(key, name, len) == 0;
}

static bool key_starts(const char *key, size_t len, const char *prefix)
{
    return len >= strlen(prefix) && memcmp(key, prefix, strlen(prefix)) == 0;
}

bool dead_header_dropped_on_replay(const char *key, size_t len)
{
    return key_starts(key, len, "x-greet-") || key_is(key, len, "x-death") ||
           key_starts(key, len, "x-first-death-") || key_starts(key, len, "x-last-death-") ||
           key_is(key, len, "x-delivery-count");
}

bool dead_needs_refresh(long long delivery_count)
{
    return delivery_count >= DEAD_REFRESH_AT;
}

bool dead_header_dropped_on_refresh(const char *key, size_t len)
{
    return key_is(key, len, "x-delivery-count");
}
