/* test_admin_dead.c - greet-admin's decisions about dead jobs: how one
 * died, its job_id, the filters, the headers a replay and a refresh leave
 * behind, when a listing refreshes. */
#include "buf.h"
#include "dead.h"
#include "suites.h"

#include <string.h>

struct how_case {
    const char *greet_error, *death_reason, *expect;
};

static const struct how_case how_cases[] = {
    {"invalid_json", NULL, "poison"},
    {"invalid_job", "", "poison"},
    {"too_large", NULL, "poison"},
    {"bad_preferences", NULL, "poison"},
    {"reply_refused", NULL, "reply_refused"},
    /* The worker's verdict wins over a later dead-lettering. */
    {"invalid_job", "delivery_limit", "poison"},
    {NULL, "delivery_limit", "delivery_limit"},
    {"", "delivery_limit", "delivery_limit"},
    {NULL, "rejected", "rejected"},
    {NULL, "expired", "expired"},
    {NULL, NULL, "unknown"},
    {"", "", "unknown"},
};

START_TEST(test_how)
{
    const struct how_case *c = &how_cases[_i];

    ck_assert_str_eq(dead_how(c->greet_error, c->death_reason), c->expect);
}
END_TEST

struct job_id_case {
    const char *body, *message_id;
    bool found;
    const char *expect;
};

static const struct job_id_case job_id_cases[] = {
    {"{\"job_id\":\"j-1\",\"user_id\":3}", "m-1", true, "j-1"},
    {"{\"job_id\":\"j-1\"}", NULL, true, "j-1"},
    {"{\"job_id\":\"\\u00e9t\\u00e9\"}", NULL, true, "\xc3\xa9t\xc3\xa9"},
    /* The body's job_id is unusable: the message_id stands in. */
    {"{\"job_id\":\"\"}", "m-2", true, "m-2"},
    {"{\"job_id\":42}", "m-3", true, "m-3"},
    {"{\"user_id\":1}", "m-4", true, "m-4"},
    {"[\"job_id\",\"x\"]", "m-5", true, "m-5"},
    {"this is not json", "m-6", true, "m-6"},
    {"{\"job_id\":\"j-7\"", "m-7", true, "m-7"}, /* cut short */
    {"", "m-8", true, "m-8"},
    /* Neither. */
    {"not json", NULL, false, ""},
    {"not json", "", false, ""},
    {"{\"job_id\":null}", NULL, false, ""},
};

START_TEST(test_job_id)
{
    const struct job_id_case *c = &job_id_cases[_i];
    struct buf out = {0};

    buf_append_str(&out, "left over");
    ck_assert_int_eq(dead_job_id(c->body, strlen(c->body), c->message_id, &out), c->found);
    ck_assert_str_eq(out.data, c->expect);
    buf_free(&out);
}
END_TEST

struct match_case {
    struct dead_filter filter;
    const char *job_id, *greet_error, *how;
    bool expect;
};

static const struct match_case match_cases[] = {
    {{NULL, NULL}, "j-1", "invalid_job", "poison", true},
    {{NULL, NULL}, NULL, NULL, "unknown", true},
    /* --error: the x-greet-error code... */
    {{"invalid_job", NULL}, "j-1", "invalid_job", "poison", true},
    {{"invalid_json", NULL}, "j-1", "invalid_job", "poison", false},
    {{"reply_refused", NULL}, "j-1", "reply_refused", "reply_refused", true},
    /* ... or the way it died. */
    {{"poison", NULL}, "j-1", "too_large", "poison", true},
    {{"poison", NULL}, "j-1", NULL, "delivery_limit", false},
    {{"delivery_limit", NULL}, "j-1", NULL, "delivery_limit", true},
    {{"delivery_limit", NULL}, "j-1", "invalid_job", "poison", false},
    {{"unknown", NULL}, NULL, NULL, "unknown", true},
    /* --job-id: exact. */
    {{NULL, "j-1"}, "j-1", NULL, "delivery_limit", true},
    {{NULL, "j-1"}, "j-10", NULL, "delivery_limit", false},
    {{NULL, "j-1"}, "J-1", NULL, "delivery_limit", false},
    {{NULL, "j-1"}, NULL, NULL, "unknown", false},
    /* Both must hold. */
    {{"invalid_job", "j-1"}, "j-1", "invalid_job", "poison", true},
    {{"invalid_job", "j-1"}, "j-2", "invalid_job", "poison", false},
    {{"invalid_job", "j-1"}, "j-1", "too_large", "poison", false},
};

START_TEST(test_matches)
{
    const struct match_case *c = &match_cases[_i];

    ck_assert_int_eq(dead_matches(&c->filter, c->job_id, c->greet_error, c->how), c->expect);
}
END_TEST

struct header_case {
    const char *key;
    bool replay, refresh; /* dropped on replay, on refresh */
};

static const struct header_case header_cases[] = {
    {"x-greet-error", true, false},
    {"x-greet-detail", true, false},
    {"x-greet-anything-later", true, false},
    {"x-death", true, false},
    {"x-first-death-reason", true, false},
    {"x-first-death-queue", true, false},
    {"x-first-death-exchange", true, false},
    {"x-last-death-reason", true, false},
    {"x-last-death-queue", true, false},
    {"x-last-death-exchange", true, false},
    {"x-delivery-count", true, true},
    /* What the producer or another program set stays. */
    {"custom", false, false},
    {"x-greet", false, false},
    {"x-deaths", false, false},
    {"x-death-note", false, false},
    {"x-delivery-count-old", false, false},
    {"x-delivery", false, false},
    {"trace-id", false, false},
    {"", false, false},
};

START_TEST(test_headers)
{
    const struct header_case *c = &header_cases[_i];

    ck_assert_msg(dead_header_dropped_on_replay(c->key, strlen(c->key)) == c->replay, "replay, %s",
                  c->key);
    ck_assert_msg(dead_header_dropped_on_refresh(c->key, strlen(c->key)) == c->refresh,
                  "refresh, %s", c->key);
}
END_TEST

START_TEST(test_headers_by_length)
{
    /* Keys are not NUL-terminated in a frame: only len bytes count. */
    ck_assert(dead_header_dropped_on_replay("x-deathXYZ", 7));
    ck_assert(!dead_header_dropped_on_replay("x-death", 6));
    ck_assert(dead_header_dropped_on_refresh("x-delivery-count!", 16));
    ck_assert(!dead_header_dropped_on_refresh("x-delivery-count", 15));
}
END_TEST

START_TEST(test_refresh)
{
    static const struct {
        long long count;
        bool refresh;
    } cases[] = {
        {0, false},
        {1, false},
        {DEAD_REFRESH_AT - 1, false},
        {DEAD_REFRESH_AT, true},
        {DEAD_REFRESH_AT + 1, true},
        {19, true},
        {1000, true},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(dead_needs_refresh(cases[i].count) == cases[i].refresh, "count %lld",
                      cases[i].count);
    /* Refreshing must come well before RabbitMQ 4's default limit (20),
     * which drops a job listed past it. */
    ck_assert_int_lt(DEAD_REFRESH_AT + 1, 20);
}
END_TEST

Suite *admin_dead_suite(void)
{
    Suite *s = suite_create("admin_dead");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_how, 0, sizeof how_cases / sizeof how_cases[0]);
    tcase_add_loop_test(tc, test_job_id, 0, sizeof job_id_cases / sizeof job_id_cases[0]);
    tcase_add_loop_test(tc, test_matches, 0, sizeof match_cases / sizeof match_cases[0]);
    tcase_add_loop_test(tc, test_headers, 0, sizeof header_cases / sizeof header_cases[0]);
    tcase_add_test(tc, test_headers_by_length);
    tcase_add_test(tc, test_refresh);
    suite_add_tcase(s, tc);
    return s;
}
