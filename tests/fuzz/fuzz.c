/* fuzz.c - the helpers every fuzz target links; see fuzz.h. */
#include "fuzz.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fuzz_require(bool ok, const char *format, ...)
{
    va_list ap;

    if (ok)
        return;
    fputs("fuzz: property violated: ", stderr);
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

void fuzz_input_init(struct fuzz_input *in, const uint8_t *data, size_t size)
{
    in->copy = malloc(size + 1);
    fuzz_require(in->copy != NULL, "out of memory");
    if (size > 0)
        memcpy(in->copy, data, size);
    in->copy[size] = '\0';
    in->size = size;
    in->pos = 0;
}

unsigned char fuzz_byte(struct fuzz_input *in)
{
    if (in->pos >= in->size)
        return 0;
    return (unsigned char)in->copy[in->pos++];
}

const char *fuzz_string(struct fuzz_input *in)
{
    const char *s;

    if (in->pos >= in->size)
        return "";
    s = in->copy + in->pos;
    in->pos += strlen(s) + 1;
    return s;
}

bool fuzz_input_left(const struct fuzz_input *in)
{
    return in->pos < in->size;
}

void fuzz_input_free(struct fuzz_input *in)
{
    free(in->copy);
    in->copy = NULL;
}

/* jansson's own UTF-8 check: json_stringn() refuses what is not UTF-8
 * (overlong forms, surrogates and values past U+10FFFF included). */
bool fuzz_valid_utf8(const char *s, size_t len)
{
    json_t *string = json_stringn(s, len);
    bool valid = string != NULL;

    json_decref(string);
    return valid;
}
