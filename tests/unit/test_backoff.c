/* test_backoff.c - delays grow, stay jittered within bounds, cap, reset. */
#include "backoff.h"
#include "suites.h"

/* Attempt n's delay lies in [ceiling/2, ceiling], ceiling = min(cap, base*2^n). */
static const struct {
    double base, cap;
    unsigned attempt;
    double low, high;
} bounds[] = {
    {0.1, 30, 0, 0.05, 0.1}, {0.1, 30, 1, 0.1, 0.2}, {0.1, 30, 3, 0.4, 0.8},
    {0.1, 30, 10, 15, 30},   {0.1, 30, 60, 15, 30},  {1, 1, 5, 0.5, 1},
};

START_TEST(test_bounds)
{
    for (uint64_t seed = 1; seed < 200; seed++) {
        struct backoff b;
        double delay = 0;

        backoff_init(&b, bounds[_i].base, bounds[_i].cap, seed);
        for (unsigned n = 0; n <= bounds[_i].attempt; n++)
            delay = backoff_next(&b);
        ck_assert_msg(delay >= bounds[_i].low && delay <= bounds[_i].high, "case %d seed %llu: %f",
                      _i, (unsigned long long)seed, delay);
    }
}
END_TEST

START_TEST(test_jitter_spreads)
{
    struct backoff a, b;

    backoff_init(&a, 1, 60, 1);
    backoff_init(&b, 1, 60, 2);
    for (int i = 0; i < 4; i++)
        ck_assert(backoff_next(&a) != backoff_next(&b));
}
END_TEST

START_TEST(test_reset)
{
    struct backoff b;

    backoff_init(&b, 0.5, 60, 7);
    for (int i = 0; i < 8; i++)
        backoff_next(&b);
    backoff_reset(&b);
    ck_assert(backoff_next(&b) <= 0.5);
}
END_TEST

START_TEST(test_random_range)
{
    struct backoff b;

    backoff_init(&b, 1, 1, 0);
    for (int i = 0; i < 10000; i++) {
        double r = backoff_random(&b);
        ck_assert(r >= 0 && r < 1);
    }
}
END_TEST

Suite *backoff_suite(void)
{
    Suite *s = suite_create("backoff");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_bounds, 0, sizeof bounds / sizeof bounds[0]);
    tcase_add_test(tc, test_jitter_spreads);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_random_range);
    suite_add_tcase(s, tc);
    return s;
}
