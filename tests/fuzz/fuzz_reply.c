/* fuzz_reply.c - reply bodies against jansson's own compact dump.
 *
 * For any strings, reply_encode_ok() and reply_encode_error() must write
 * the very bytes json_dumps(JSON_COMPACT | JSON_PRESERVE_ORDER) writes for
 * the same members, once what is not UTF-8 is replaced by U+FFFD a byte at
 * a time (jsonw.h's promise, which keeps a reply valid JSON whatever the
 * database holds).  The buffer is one a longer reply used before, as in
 * the worker.  jsonw_int() is held to jansson's integers the same way. */
#include "fuzz.h"
#include "jsonw.h"
#include "reply.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* s with each byte that starts no UTF-8 character replaced by U+FFFD;
 * what is a character, jansson decides (the first 1..4 bytes it accepts). */
static char *replace_invalid(const char *s)
{
    size_t len = strlen(s), n;
    char *out = malloc(len * 3 + 1), *o = out;

    fuzz_require(out != NULL, "out of memory");
    for (size_t i = 0; i < len; i += n) {
        for (n = 1; n <= 4 && i + n <= len; n++)
            if (fuzz_valid_utf8(s + i, n))
                break;
        if (n <= 4 && i + n <= len) {
            memcpy(o, s + i, n);
            o += n;
        } else {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            n = 1;
        }
    }
    *o = '\0';
    return out;
}

/* A JSON string, or null for NULL. */
static json_t *string_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* What jansson writes for {"k0":v0,"k1":v1,"k2":v2,"k3":v3}. */
static char *jansson_dump(const char *const keys[4], const char *const values[4])
{
    json_t *object = json_object();
    char *text;

    for (int i = 0; i < 4; i++) {
        json_t *value = string_or_null(values[i]);
        fuzz_require(value != NULL, "jansson refused member %d", i);
        json_object_set_new(object, keys[i], value);
    }
    text = json_dumps(object, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(object);
    fuzz_require(text != NULL, "jansson could not dump");
    return text;
}

static void check_same(const struct buf *out, const char *expected, const char *what)
{
    fuzz_require(out->len == strlen(expected) && memcmp(out->data, expected, out->len) == 0,
                 "%s: encoder wrote\n  %s\njansson writes\n  %s", what, out->data, expected);
}

static void check_int(long long value)
{
    struct buf out = {0};
    json_t *integer = json_integer(value);
    char *expected = json_dumps(integer, JSON_ENCODE_ANY);

    fuzz_require(jsonw_int(&out, value), "jsonw_int failed");
    check_same(&out, expected, "jsonw_int");
    free(expected);
    json_decref(integer);
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const ok_keys[4] = {"job_id", "status", "message", "language"};
    static const char *const error_keys[4] = {"job_id", "status", "error", "detail"};
    struct fuzz_input in;
    struct buf out = {0};
    const char *a, *b, *c;
    char *fa, *fb, *fc, *expected;
    long long number = 0;

    fuzz_input_init(&in, data, size);
    for (int i = 0; i < 8; i++)
        number = (long long)((unsigned long long)number << 8 | fuzz_byte(&in));
    a = fuzz_string(&in);
    b = fuzz_string(&in);
    c = fuzz_string(&in);
    fa = replace_invalid(a);
    fb = replace_invalid(b);
    fc = replace_invalid(c);
    check_int(number);

    /* Leave a longer reply in the buffer first: each encode replaces it. */
    fuzz_require(reply_encode_error(&out, "a job_id longer than most", "invalid_job",
                                    "a detail longer than most"),
                 "encode failed");
    fuzz_require(reply_encode_ok(&out, a, b, c), "reply_encode_ok failed");
    expected = jansson_dump(ok_keys, (const char *const[4]){fa, "ok", fb, fc});
    check_same(&out, expected, "ok reply");
    free(expected);

    /* An error reply: job_id null when there is none (NULL or ""). */
    fuzz_require(reply_encode_error(&out, a, b, c), "reply_encode_error failed");
    expected = jansson_dump(error_keys, (const char *const[4]){a[0] ? fa : NULL, "error", fb, fc});
    check_same(&out, expected, "error reply");
    free(expected);
    fuzz_require(reply_encode_error(&out, NULL, b, c), "reply_encode_error failed");
    expected = jansson_dump(error_keys, (const char *const[4]){NULL, "error", fb, fc});
    check_same(&out, expected, "error reply without job_id");
    free(expected);

    free(fa);
    free(fb);
    free(fc);
    buf_free(&out);
    fuzz_input_free(&in);
    return 0;
}
