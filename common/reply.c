/* reply.c - reply bodies; see reply.h. */
#include "reply.h"

#include <jansson.h>

/* Insertion order is the default since jansson 2.14; the flag keeps older
 * builds byte-stable too. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

/* Serialises obj compactly into out (replacing its contents) and drops
 * the reference.  jansson keeps keys in insertion order, so the bytes are
 * a function of the values alone. */
static bool dump(struct buf *out, json_t *obj)
{
    size_t need;

    buf_reset(out);
    if (obj == NULL)
        return false;
    need = json_dumpb(obj, NULL, 0, DUMP_FLAGS);
    if (need == 0 || !buf_reserve(out, need)) {
        json_decref(obj);
        return false;
    }
    out->len = json_dumpb(obj, out->data, need, DUMP_FLAGS);
    out->data[out->len] = '\0';
    json_decref(obj);
    return out->len == need;
}

/* json_pack's "s?" gives null for NULL; an empty job_id also means "none". */
static const char *or_null(const char *s)
{
    return (s != NULL && s[0] != '\0') ? s : NULL;
}

bool reply_encode_ok(struct buf *out, const char *job_id, const char *message, const char *language)
{
    return dump(out, json_pack("{s:s, s:s, s:s, s:s}", "job_id", job_id, "status", "ok", "message",
                               message, "language", language));
}

bool reply_encode_error(struct buf *out, const char *job_id, const char *code, const char *detail)
{
    return dump(out, json_pack("{s:s?, s:s, s:s, s:s}", "job_id", or_null(job_id), "status",
                               "error", "error", code, "detail", detail));
}
