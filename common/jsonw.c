/* jsonw.c - the hand-written JSON writer; see jsonw.h. */
#include "jsonw.h"

#include "utf8.h"

#include <stdio.h>
#include <string.h>

bool jsonw_string(struct buf *out, const char *s)
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

bool jsonw_int(struct buf *out, long long value)
{
    char digits[24];
    int len = snprintf(digits, sizeof digits, "%lld", value);

    return buf_append(out, digits, (size_t)len);
}
