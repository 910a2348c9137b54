/* reply.c - reply bodies; see reply.h.
 *
 * Written by hand rather than through jansson: a reply is four strings
 * in a fixed order, and building a json_t tree for it cost a dozen
 * allocations and two serialisation passes per job (a third of the
 * worker's CPU in the benchmark's profile).  The output is what jansson's
 * compact dump gives, byte for byte, for valid UTF-8. */
#include "reply.h"

#include "utf8.h"

#include <string.h>

/* Appends s as a JSON string: '"' and '\\' escaped, control characters as
 * \b \f \n \r \t or \u00XX, everything else as it is.  Bytes that are not
 * UTF-8 (a template from a database in another encoding) become U+FFFD,
 * so a reply is valid JSON whatever the data. */
static bool append_string(struct buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s);

    if (!buf_append(out, "\"", 1))
        return false;
    while (left > 0) {
        const unsigned char *run = p;
        unsigned long cp;
        unsigned n;

        /* The common case: a run of plain printable ASCII. */
        while (left > 0 && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') {
            p++;
            left--;
        }
        if (p > run && !buf_append(out, run, (size_t)(p - run)))
            return false;
        if (left == 0)
            break;
        n = utf8_next(p, left, &cp);
        if (n == 0) {
            if (!buf_append(out, "\xef\xbf\xbd", 3))
                return false;
            p++;
            left--;
            continue;
        }
        if (cp == '"' || cp == '\\') {
            char escaped[2] = {'\\', (char)cp};
            if (!buf_append(out, escaped, 2))
                return false;
        } else if (cp < 0x20) {
            char escaped[6] = {'\\', 'u', '0', '0', hex[cp >> 4], hex[cp & 15]};
            const char *brief = cp == '\b'   ? "\\b"
                                : cp == '\f' ? "\\f"
                                : cp == '\n' ? "\\n"
                                : cp == '\r' ? "\\r"
                                : cp == '\t' ? "\\t"
                                             : NULL;
            if (!(brief ? buf_append(out, brief, 2) : buf_append(out, escaped, 6)))
                return false;
        } else if (!buf_append(out, p, n)) {
            return false;
        }
        p += n;
        left -= n;
    }
    return buf_append(out, "\"", 1);
}

/* Appends ,"key": then the string value (the first member has no comma). */
static bool append_member(struct buf *out, const char *key, const char *value)
{
    return buf_append_str(out, out->len > 1 ? ",\"" : "\"") && buf_append_str(out, key) &&
           buf_append(out, "\":", 2) &&
           (value ? append_string(out, value) : buf_append(out, "null", 4));
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
