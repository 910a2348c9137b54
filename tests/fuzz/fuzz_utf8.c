/* fuzz_utf8.c - UTF-8 decoding and the text rule job_id and name obey.
 *
 * utf8_next() against jansson's UTF-8 check: a sequence it accepts is one
 * jansson accepts and encodes back to the same bytes (so no overlong form,
 * surrogate or value past U+10FFFF); where it refuses, no character of
 * 1..4 bytes starts there; the whole input decodes exactly when jansson
 * calls it UTF-8.  job_check_text() accepts exactly the valid text of 1 to
 * max characters without a control character, and names the fault it
 * reports truly. */
#include "fuzz.h"
#include "job.h"
#include "utf8.h"

#include <string.h>

static size_t encode(unsigned long cp, unsigned char out[4])
{
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xc0 | cp >> 6);
        out[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xe0 | cp >> 12);
        out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (unsigned char)(0xf0 | cp >> 18);
    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

static bool is_control(unsigned long cp)
{
    return cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const unsigned char *s;
    size_t max_chars, left, chars = 0;
    bool decoded_all = true, control = false, valid;
    const char *problem;

    if (size == 0)
        return 0;
    max_chars = data[0]; /* the rest is the text */
    s = data + 1;
    left = size - 1;
    valid = fuzz_valid_utf8((const char *)s, left);

    for (size_t i = 0; i < left;) {
        unsigned long cp = 0;
        unsigned n = utf8_next(s + i, left - i, &cp);
        unsigned char back[4];

        if (n == 0) {
            for (size_t k = 1; k <= 4 && i + k <= left; k++)
                fuzz_require(!fuzz_valid_utf8((const char *)s + i, k),
                             "refused %zu valid bytes at %zu", k, i);
            decoded_all = false;
            break;
        }
        fuzz_require(n <= 4 && i + n <= left, "length %u at %zu of %zu", n, i, left);
        fuzz_require(fuzz_valid_utf8((const char *)s + i, n), "accepted invalid bytes at %zu", i);
        fuzz_require(encode(cp, back) == n && memcmp(back, s + i, n) == 0,
                     "U+%04lX does not encode back to its %u bytes", cp, n);
        fuzz_require(utf8_is_control(cp) == is_control(cp), "U+%04lX control is %d", cp,
                     utf8_is_control(cp));
        control = control || is_control(cp);
        chars++;
        i += n;
    }
    fuzz_require(decoded_all == valid, "decoded all: %d, jansson says UTF-8: %d", decoded_all,
                 valid);

    problem = job_check_text((const char *)s, left, max_chars);
    if (problem == NULL)
        fuzz_require(valid && !control && chars >= 1 && chars <= max_chars,
                     "accepted text that breaks the rule");
    else if (strcmp(problem, "is empty") == 0)
        fuzz_require(left == 0, "'is empty' for %zu bytes", left);
    else if (strcmp(problem, "is not valid UTF-8") == 0)
        fuzz_require(!valid, "'%s' for valid UTF-8", problem);
    else if (strcmp(problem, "contains a control character") == 0)
        fuzz_require(control, "'%s' without one", problem);
    else
        fuzz_require(strcmp(problem, "is too long") == 0 && valid && !control && chars > max_chars,
                     "'%s' for %zu characters, at most %zu", problem, chars, max_chars);
    return 0;
}
