/* utf8.c - UTF-8 decoding; see utf8.h. */
#include "utf8.h"

/* Length of the sequence a lead byte starts, 0 if it cannot start one. */
static unsigned sequence_length(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

unsigned utf8_next(const unsigned char *s, size_t len, unsigned long *code_point)
{
    unsigned n = sequence_length(s[0]);
    unsigned long cp;

    if (n == 0 || n > len)
        return 0;
    if (n == 1) {
        *code_point = s[0];
        return 1;
    }
    cp = s[0] & (0x7f >> n);
    for (unsigned i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    *code_point = cp;
    return n;
}

bool utf8_is_control(unsigned long code_point)
{
    return code_point < 0x20 || (code_point >= 0x7f && code_point <= 0x9f);
}
