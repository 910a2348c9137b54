/* test_stdfds.c - a closed stdout stays unusable, never reused. */
#include "stdfds.h"
#include "suites.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Started with stdout closed: fd 1 is taken, writing to it fails, and the
 * next descriptor opened (a broker socket, in the programs) is not 1. */
START_TEST(test_reserve_closed_stdout)
{
    int saved = dup(STDOUT_FILENO);
    int reserved, is_open, next, write_errno;
    ssize_t wrote;

    ck_assert_int_ge(saved, 0);
    close(STDOUT_FILENO);
    reserved = stdfds_reserve();
    is_open = fcntl(STDOUT_FILENO, F_GETFD) != -1;
    errno = 0;
    wrote = write(STDOUT_FILENO, "x", 1);
    write_errno = errno;
    next = open("/dev/null", O_RDONLY);
    /* Put stdout back before any assertion can end the test. */
    dup2(saved, STDOUT_FILENO);
    close(saved);
    if (next >= 0)
        close(next);

    ck_assert_int_eq(reserved, 0);
    ck_assert(is_open);
    ck_assert_int_eq(wrote, -1);
    ck_assert_int_eq(write_errno, EBADF);
    ck_assert_int_ne(next, STDOUT_FILENO);
}
END_TEST

/* Descriptors that are open are left as they are. */
START_TEST(test_reserve_leaves_open_ones)
{
    struct stat before, after;

    ck_assert_int_eq(fstat(STDERR_FILENO, &before), 0);
    ck_assert_int_eq(stdfds_reserve(), 0);
    ck_assert_int_eq(fstat(STDERR_FILENO, &after), 0);
    ck_assert(before.st_dev == after.st_dev && before.st_ino == after.st_ino);
}
END_TEST

Suite *stdfds_suite(void)
{
    Suite *s = suite_create("stdfds");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_reserve_closed_stdout);
    tcase_add_test(tc, test_reserve_leaves_open_ones);
    suite_add_tcase(s, tc);
    return s;
}
