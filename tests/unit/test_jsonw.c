/* test_jsonw.c - the hand-written JSON writer: escapes, and byte-identical
 * output to jansson's compact dump. */
#include "jsonw.h"
#include "suites.h"

#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *in;
    const char *out;
} strings[] = {
    {"", "\"\""},
    {"plain ascii", "\"plain ascii\""},
    {"a\"b", "\"a\\\"b\""},
    {"back\\slash", "\"back\\\\slash\""},
    {"\"\\\"", "\"\\\"\\\\\\\"\""},
    {"slash / stays", "\"slash / stays\""},
    {"\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\""},
    {"\x01\x1f", "\"\\u0001\\u001F\""},
    {"del\x7f", "\"del\x7f\""},
    {"Zo\xc3\xab \xe5\xb1\xb1 \xf0\x9f\x98\x80", "\"Zo\xc3\xab \xe5\xb1\xb1 \xf0\x9f\x98\x80\""},
    {"\xe2\x80\xa8", "\"\xe2\x80\xa8\""},
    /* Not UTF-8: U+FFFD, so the output is always valid JSON. */
    {"a\xff"
     "b",
     "\"a\xef\xbf\xbd"
     "b\""},
    {"\xc3", "\"\xef\xbf\xbd\""},
    {"\xed\xa0\x80", "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""},
};

START_TEST(test_string)
{
    struct buf out = {0};

    ck_assert(buf_append_str(&out, "x"));
    ck_assert(jsonw_string(&out, strings[_i].in));
    /* Appends: what was there stays. */
    ck_assert_msg(out.data[0] == 'x' && strcmp(out.data + 1, strings[_i].out) == 0,
                  "case %d: '%s', want 'x%s'", _i, out.data, strings[_i].out);
    buf_free(&out);
}
END_TEST

/* Every valid string of the table, as jansson writes it. */
START_TEST(test_string_as_jansson)
{
    json_t *value = json_string(strings[_i].in);
    struct buf out = {0};
    char *dumped;

    if (value == NULL)
        return; /* not UTF-8: jansson refuses it */
    dumped = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
    ck_assert(jsonw_string(&out, strings[_i].in));
    ck_assert_str_eq(out.data, dumped);
    free(dumped);
    json_decref(value);
    buf_free(&out);
}
END_TEST

static const struct {
    long long in;
    const char *out;
} ints[] = {
    {0, "0"},
    {1, "1"},
    {-1, "-1"},
    {1000, "1000"},
    {LLONG_MAX, "9223372036854775807"},
    {LLONG_MIN, "-9223372036854775808"},
};

START_TEST(test_int)
{
    struct buf out = {0};

    ck_assert(jsonw_int(&out, ints[_i].in));
    ck_assert_str_eq(out.data, ints[_i].out);
    buf_free(&out);
}
END_TEST

Suite *jsonw_suite(void)
{
    Suite *s = suite_create("jsonw");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_string, 0, sizeof strings / sizeof strings[0]);
    tcase_add_loop_test(tc, test_string_as_jansson, 0, sizeof strings / sizeof strings[0]);
    tcase_add_loop_test(tc, test_int, 0, sizeof ints / sizeof ints[0]);
    suite_add_tcase(s, tc);
    return s;
}
