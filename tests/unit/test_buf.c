/* test_buf.c - the growable buffer. */
#include "buf.h"
#include "suites.h"

#include <string.h>

START_TEST(test_append_grows_and_terminates)
{
    struct buf b = {0};
    char big[1000];

    memset(big, 'x', sizeof big);
    ck_assert(buf_append_str(&b, "abc"));
    ck_assert(buf_append(&b, big, sizeof big));
    ck_assert_uint_eq(b.len, 1003);
    ck_assert_int_eq(b.data[b.len], '\0');
    ck_assert(strncmp(b.data, "abcxxx", 6) == 0);
    buf_reset(&b);
    ck_assert_uint_eq(b.len, 0);
    ck_assert_str_eq(b.data, "");
    buf_free(&b);
}
END_TEST

START_TEST(test_shrink_frees_only_large)
{
    struct buf b = {0};

    ck_assert(buf_append_str(&b, "small"));
    buf_shrink(&b, 4096);
    ck_assert_ptr_nonnull(b.data);
    ck_assert_uint_eq(b.len, 0);
    ck_assert(buf_reserve(&b, 100000));
    buf_shrink(&b, 4096);
    ck_assert_ptr_null(b.data);
    ck_assert_uint_eq(b.cap, 0);
}
END_TEST

/* A fixed buffer: what fits of each piece, always terminated. */
static const struct {
    size_t size;
    const char *pieces[3];
    const char *expect;
} fixed_cases[] = {
    {16, {"abc", "def", NULL}, "abcdef"},
    {7, {"abc", "def", NULL}, "abcdef"}, /* exactly fits */
    {6, {"abc", "def", NULL}, "abcde"},  /* cut, terminated */
    {4, {"abcdef", "gh", NULL}, "abc"},  /* later pieces dropped */
    {1, {"abc", NULL}, ""},              /* room for the NUL only */
    {16, {"", "", NULL}, ""},
};

START_TEST(test_fixed_table)
{
    char out[16];
    struct buf_fixed f;

    memset(out, 'x', sizeof out);
    buf_fixed_init(&f, out, fixed_cases[_i].size);
    for (int i = 0; fixed_cases[_i].pieces[i]; i++)
        buf_fixed_add_str(&f, fixed_cases[_i].pieces[i]);
    ck_assert_str_eq(out, fixed_cases[_i].expect);
    ck_assert_uint_eq(f.len, strlen(fixed_cases[_i].expect));
    ck_assert_int_eq(out[fixed_cases[_i].size - 1 < 15 ? fixed_cases[_i].size : 15], 'x');
}
END_TEST

START_TEST(test_fixed_size_zero)
{
    char out[1] = {'x'};
    struct buf_fixed f;

    buf_fixed_init(&f, out, 0);
    buf_fixed_add_str(&f, "abc");
    ck_assert_int_eq(out[0], 'x'); /* never written */
}
END_TEST

Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_append_grows_and_terminates);
    tcase_add_test(tc, test_shrink_frees_only_large);
    tcase_add_loop_test(tc, test_fixed_table, 0, sizeof fixed_cases / sizeof fixed_cases[0]);
    tcase_add_test(tc, test_fixed_size_zero);
    suite_add_tcase(s, tc);
    return s;
}
