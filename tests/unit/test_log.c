/* test_log.c - logfmt quoting, the one place log lines could go wrong. */
#include "log.h"
#include "suites.h"

#include <string.h>

static const struct {
    const char *value;
    const char *expected; /* what follows " k=" */
} quoting[] = {
    {"plain", "plain"},
    {"", "\"\""},
    {"two words", "\"two words\""},
    {"a=b", "\"a=b\""},
    {"say \"hi\"", "\"say \\\"hi\\\"\""},
    {"back\\slash", "\"back\\\\slash\""},
    {"line\nbreak", "\"line\\nbreak\""},
    {"bell\a", "\"bell\\x07\""},
    {"caf\xc3\xa9", "caf\xc3\xa9"},
};

START_TEST(test_quoting)
{
    struct log_line line;
    const char *field;

    log_init("test", LOG_DEBUG);
    log_begin(&line, LOG_INFO, "e");
    log_str(&line, "k", quoting[_i].value);
    line.buf[line.len] = '\0';
    field = strstr(line.buf, " k=");
    ck_assert_ptr_nonnull(field);
    ck_assert_str_eq(field + 3, quoting[_i].expected);
}
END_TEST

START_TEST(test_levels_filter_and_parse)
{
    struct log_line line;
    enum log_level level;

    log_init("test", LOG_WARN);
    log_begin(&line, LOG_INFO, "e");
    ck_assert(!line.enabled);
    ck_assert(log_level_parse("error", &level));
    ck_assert_int_eq(level, LOG_ERROR);
    ck_assert(!log_level_parse("verbose", &level));
    log_init("test", LOG_INFO);
}
END_TEST

START_TEST(test_long_value_is_cut_not_overflowed)
{
    struct log_line line;
    static char huge[LOG_LINE_MAX * 2];

    memset(huge, 'y', sizeof huge - 1);
    log_init("test", LOG_DEBUG);
    log_begin(&line, LOG_INFO, "e");
    log_str(&line, "k", huge);
    ck_assert_uint_lt(line.len, LOG_LINE_MAX - 1);
}
END_TEST

Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_quoting, 0, sizeof quoting / sizeof quoting[0]);
    tcase_add_test(tc, test_levels_filter_and_parse);
    tcase_add_test(tc, test_long_value_is_cut_not_overflowed);
    suite_add_tcase(s, tc);
    return s;
}
