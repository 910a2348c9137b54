/* test_confirms.c - confirm tracking: in order, out of order, multiple,
 * nacks, duplicates, unknown numbers, a lost channel. */
#include "confirms.h"
#include "suites.h"

#include <stdio.h>
#include <string.h>

/* What the callback saw, as text: "owner:a|n|l " per settled publish. */
static char seen[256];

static void record(void *ctx, uint64_t owner, enum confirm_outcome outcome)
{
    size_t len = strlen(seen);

    (void)ctx;
    snprintf(seen + len, sizeof seen - len, "%llu:%c ", (unsigned long long)owner,
             outcome == CONFIRM_ACKED    ? 'a'
             : outcome == CONFIRM_NACKED ? 'n'
                                         : 'l');
}

/* One step: 't' track (seq, owner), 'a'/'n' settle (seq, multiple),
 * 'r' reset. */
struct step {
    char op;
    uint64_t seq;
    uint64_t arg; /* owner for 't', multiple for 'a'/'n' */
};

struct confirms_case {
    const char *name;
    size_t cap;
    struct step steps[12];
    const char *expect_seen;
    size_t expect_in_flight;
    bool expect_track_refused; /* some 't' step must fail */
};

static const struct confirms_case cases[] = {
    {"in order, one by one",
     4,
     {{'t', 1, 10}, {'t', 2, 20}, {'a', 1, 0}, {'a', 2, 0}},
     "10:a 20:a ",
     0,
     false},
    {"multiple settles every publish up to it",
     4,
     {{'t', 1, 10}, {'t', 2, 20}, {'t', 3, 30}, {'a', 2, 1}},
     "10:a 20:a ",
     1,
     false},
    {"out of order: a later one first",
     4,
     {{'t', 1, 10}, {'t', 2, 20}, {'t', 3, 30}, {'a', 3, 0}},
     "30:a ",
     3,
     false},
    {"out of order, then the head: all popped",
     4,
     {{'t', 1, 10}, {'t', 2, 20}, {'a', 2, 0}, {'a', 1, 0}},
     "20:a 10:a ",
     0,
     false},
    {"multiple over a gap already settled",
     4,
     {{'t', 1, 10}, {'t', 2, 20}, {'t', 3, 30}, {'a', 2, 0}, {'a', 3, 1}},
     "20:a 10:a 30:a ",
     0,
     false},
    {"a nack, single",
     4,
     {{'t', 1, 10}, {'t', 2, 20}, {'n', 2, 0}, {'a', 1, 0}},
     "20:n 10:a ",
     0,
     false},
    {"a nack, multiple", 4, {{'t', 1, 10}, {'t', 2, 20}, {'n', 2, 1}}, "10:n 20:n ", 0, false},
    {"a duplicate confirm is ignored",
     4,
     {{'t', 1, 10}, {'a', 1, 0}, {'a', 1, 0}},
     "10:a ",
     0,
     false},
    {"a duplicate of a non-head one too",
     4,
     {{'t', 1, 10}, {'t', 2, 20}, {'a', 2, 0}, {'a', 2, 0}, {'a', 2, 1}},
     "20:a 10:a ",
     0,
     false},
    {"a number never published is ignored", 4, {{'t', 1, 10}, {'a', 7, 0}}, "", 1, false},
    {"multiple beyond the last covers what there is",
     4,
     {{'t', 1, 10}, {'t', 2, 20}, {'a', 9, 1}},
     "10:a 20:a ",
     0,
     false},
    {"confirm with nothing tracked", 4, {{'a', 1, 1}, {'n', 3, 0}}, "", 0, false},
    {"full window refuses a track", 2, {{'t', 1, 10}, {'t', 2, 20}, {'t', 3, 30}}, "", 2, true},
    {"out-of-sequence track refused", 4, {{'t', 1, 10}, {'t', 3, 30}}, "", 1, true},
    {"room again once the head settles",
     2,
     {{'t', 1, 10}, {'t', 2, 20}, {'a', 1, 0}, {'t', 3, 30}, {'a', 3, 1}},
     "10:a 20:a 30:a ",
     0,
     false},
    {"a settled one behind the head still takes room",
     2,
     {{'t', 1, 10}, {'t', 2, 20}, {'a', 2, 0}, {'t', 3, 30}},
     "20:a ",
     2,
     true},
    {"reset reports the unsettled ones, numbering restarts",
     4,
     {{'t', 1, 10},
      {'t', 2, 20},
      {'t', 3, 30},
      {'a', 2, 0},
      {'r', 0, 0},
      {'t', 1, 40},
      {'a', 1, 0}},
     "20:a 10:l 30:l 40:a ",
     0,
     false},
    {"ring wraps around",
     3,
     {{'t', 1, 1},
      {'t', 2, 2},
      {'a', 2, 1},
      {'t', 3, 3},
      {'t', 4, 4},
      {'t', 5, 5},
      {'a', 5, 0},
      {'a', 4, 0},
      {'a', 3, 0}},
     "1:a 2:a 5:a 4:a 3:a ",
     0,
     false},
};

START_TEST(test_confirms_table)
{
    const struct confirms_case *t = &cases[_i];
    struct confirms c;
    bool refused = false;

    seen[0] = '\0';
    ck_assert(confirms_init(&c, t->cap));
    for (size_t i = 0; i < sizeof t->steps / sizeof t->steps[0] && t->steps[i].op; i++) {
        const struct step *s = &t->steps[i];
        switch (s->op) {
        case 't':
            if (!confirms_track(&c, s->seq, s->arg))
                refused = true;
            break;
        case 'a':
        case 'n':
            confirms_settle(&c, s->seq, s->arg != 0, s->op == 'n', record, NULL);
            break;
        case 'r':
            confirms_reset(&c, record, NULL);
            break;
        }
    }
    ck_assert_msg(strcmp(seen, t->expect_seen) == 0, "%s: saw '%s', expected '%s'", t->name, seen,
                  t->expect_seen);
    ck_assert_msg(confirms_in_flight(&c) == t->expect_in_flight, "%s: in flight %zu, expected %zu",
                  t->name, confirms_in_flight(&c), t->expect_in_flight);
    ck_assert_msg(refused == t->expect_track_refused, "%s: track refused %d", t->name, refused);
    confirms_free(&c);
}
END_TEST

/* The waits before sending a nacked publish again: 0.25 s, doubling. */
START_TEST(test_retry_delay)
{
    static const double expected[] = {0, 0.25, 0.5, 1, 2, 4, 8};
    double total = 0;

    for (unsigned n = 0; n < sizeof expected / sizeof expected[0]; n++)
        ck_assert_double_eq(confirms_retry_delay(n), expected[n]);
    for (unsigned n = 1; n <= CONFIRMS_NACK_RETRIES; n++)
        total += confirms_retry_delay(n);
    ck_assert_double_eq(total, 15.75);
    ck_assert(confirms_retry_delay(1000) <= 64); /* capped, no shift overflow */
}
END_TEST

Suite *confirms_suite(void)
{
    Suite *s = suite_create("confirms");
    TCase *tc = tcase_create("table");

    tcase_add_loop_test(tc, test_confirms_table, 0, sizeof cases / sizeof cases[0]);
    tcase_add_test(tc, test_retry_delay);
    suite_add_tcase(s, tc);
    return s;
}
