/* test_reply.c - reply bodies: exact bytes, escaping, determinism. */
#include "reply.h"
#include "suites.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *job_id, *message, *language;
    const char *expected;
} oks[] = {
    {"j1", "Hello, Ada!", "en",
     "{\"job_id\":\"j1\",\"status\":\"ok\",\"message\":\"Hello, Ada!\",\"language\":\"en\"}"},
    {"q\"t", "a\\b", "fr",
     "{\"job_id\":\"q\\\"t\",\"status\":\"ok\",\"message\":\"a\\\\b\",\"language\":\"fr\"}"},
    {"u", "Zo\xc3\xab", "ja",
     "{\"job_id\":\"u\",\"status\":\"ok\",\"message\":\"Zo\xc3\xab\",\"language\":\"ja\"}"},
    {"s", "a/b", "en",
     "{\"job_id\":\"s\",\"status\":\"ok\",\"message\":\"a/b\",\"language\":\"en\"}"},
};

START_TEST(test_ok)
{
    struct buf out = {0};

    ck_assert(reply_encode_ok(&out, oks[_i].job_id, oks[_i].message, oks[_i].language));
    ck_assert_str_eq(out.data, oks[_i].expected);
    ck_assert_uint_eq(out.len, strlen(oks[_i].expected));
    buf_free(&out);
}
END_TEST

static const struct {
    const char *job_id, *code, *detail;
    const char *expected;
} errors[] = {
    {"j1", "invalid_job", "user_id must be an integer >= 1",
     "{\"job_id\":\"j1\",\"status\":\"error\",\"error\":\"invalid_job\",\"detail\":\"user_id must "
     "be an integer >= 1\"}"},
    {NULL, "invalid_json", "body is not valid JSON",
     "{\"job_id\":null,\"status\":\"error\",\"error\":\"invalid_json\",\"detail\":\"body is not "
     "valid JSON\"}"},
    {"", "too_large", "big",
     "{\"job_id\":null,\"status\":\"error\",\"error\":\"too_large\",\"detail\":\"big\"}"},
};

START_TEST(test_error)
{
    struct buf out = {0};

    ck_assert(reply_encode_error(&out, errors[_i].job_id, errors[_i].code, errors[_i].detail));
    ck_assert_str_eq(out.data, errors[_i].expected);
    buf_free(&out);
}
END_TEST

START_TEST(test_reuse_and_determinism)
{
    struct buf first = {0}, second = {0};

    /* The same buffer is reused job after job: each encode replaces it. */
    ck_assert(reply_encode_ok(&first, "a-much-longer-job-id", "x", "en"));
    ck_assert(reply_encode_ok(&first, "j", "Hello, World!", "en"));
    ck_assert(reply_encode_ok(&second, "j", "Hello, World!", "en"));
    ck_assert_uint_eq(first.len, second.len);
    ck_assert(memcmp(first.data, second.data, first.len) == 0);
    buf_free(&first);
    buf_free(&second);
}
END_TEST

/* The encoder against jansson's own compact dump, for strings with every
 * kind of character: the bytes must be the same. */
static const char *const strings[] = {
    "",       "plain",  "q\"uote",      "back\\slash", "a/b",          "tab\there",
    "nl\nx",  "\b\f\r", "\x01\x1f\x7f", "caf\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
    "{name}",
};

START_TEST(test_matches_jansson)
{
    struct buf out = {0};
    json_t *expected = json_pack("{s:s, s:s, s:s, s:s}", "job_id", strings[_i], "status", "ok",
                                 "message", strings[_i], "language", "en");
    char *text = json_dumps(expected, JSON_COMPACT | JSON_PRESERVE_ORDER);

    ck_assert(reply_encode_ok(&out, strings[_i], strings[_i], "en"));
    ck_assert_str_eq(out.data, text);
    free(text);
    json_decref(expected);
    buf_free(&out);
}
END_TEST

static const struct {
    const char *input;
    const char *expected; /* the JSON string as encoded */
} invalid[] = {
    {"\xff", "\"\xef\xbf\xbd\""},
    {"a\xc3", "\"a\xef\xbf\xbd\""},
    {"\xed\xa0\x80z", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdz\""},
};

START_TEST(test_invalid_utf8_becomes_replacement)
{
    struct buf out = {0};
    char expected[128];

    snprintf(expected, sizeof expected,
             "{\"job_id\":\"j\",\"status\":\"ok\",\"message\":%s,\"language\":\"en\"}",
             invalid[_i].expected);
    ck_assert(reply_encode_ok(&out, "j", invalid[_i].input, "en"));
    ck_assert_str_eq(out.data, expected);
    buf_free(&out);
}
END_TEST

Suite *reply_suite(void)
{
    Suite *s = suite_create("reply");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_ok, 0, sizeof oks / sizeof oks[0]);
    tcase_add_loop_test(tc, test_error, 0, sizeof errors / sizeof errors[0]);
    tcase_add_test(tc, test_reuse_and_determinism);
    tcase_add_loop_test(tc, test_matches_jansson, 0, sizeof strings / sizeof strings[0]);
    tcase_add_loop_test(tc, test_invalid_utf8_becomes_replacement, 0,
                        sizeof invalid / sizeof invalid[0]);
    suite_add_tcase(s, tc);
    return s;
}
