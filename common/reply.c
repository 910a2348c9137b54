/* reply.c - reply bodies; see reply.h.
 *
 * Written with jsonw rather than through a json_t tree: a reply is four
 * strings in a fixed order, and building a tree for it cost a dozen
 * allocations and two serialisation passes per job (a third of the
 * worker's CPU in the benchmark's profile).  Template text from the
 * database that is not UTF-8 comes out as U+FFFD, so a reply is valid
 * JSON whatever the data. */
#include "reply.h"

#include "jsonw.h"

#include <string.h>

/* Appends ,"key": then the string value (the first member has no comma). */
static bool append_member(struct buf *out, const char *key, const char *value)
{
    return buf_append_str(out, out->len > 1 ? ",\"" : "\"") && buf_append_str(out, key) &&
           buf_append(out, "\":", 2) &&
           (value ? jsonw_string(out, value) : buf_append(out, "null", 4));
}

bool reply_encode_ok(struct buf *out, const char *job_id, const char *message, const char *language)
{
    buf_reset(out);
    return buf_append(out, "{", 1) && append_member(out, "job_id", job_id) &&
           append_member(out, "status", "ok") && append_member(out, "message", message) &&
           append_member(out, "language", language) && buf_append(out, "}", 1);
}

bool reply_encode_error(struct buf *out, const char *job_id, const char *code, const char *detail)
{
    buf_reset(out);
    return buf_append(out, "{", 1) &&
           append_member(out, "job_id", (job_id != NULL && job_id[0] != '\0') ? job_id : NULL) &&
           append_member(out, "status", "error") && append_member(out, "error", code) &&
           append_member(out, "detail", detail) && buf_append(out, "}", 1);
}
