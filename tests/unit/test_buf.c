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

Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_append_grows_and_terminates);
    tcase_add_test(tc, test_shrink_frees_only_large);
    suite_add_tcase(s, tc);
    return s;
}
