/* test_metrics.c - the worker's /metrics text and /readyz answer. */
#include "metrics.h"
#include "suites.h"

#include <stdio.h>
#include <string.h>

/* Readiness: every state the loop can be in, and the reason given. */
static const struct {
    bool broker_up, db_up, consuming, draining;
    unsigned suspects;
    const char *broker_error, *db_error;
    bool ready;
    const char *why; /* the whole line */
} states[] = {
    {true, true, true, false, 0, "", "", true, ""},
    {false, true, false, false, 0, "connect to 127.0.0.1:5672: a socket error occurred", "", false,
     "not connected to the broker: connect to 127.0.0.1:5672: a socket error occurred"},
    {false, false, false, false, 0, "", "", false, "not connected to the broker: connecting"},
    {true, false, false, false, 0, "", "server closed the connection", false,
     "not connected to the database: server closed the connection"},
    {true, false, false, false, 0, "", "", false, "not connected to the database: connecting"},
    {true, true, false, false, 3, "", "", false,
     "not consuming: running redelivered jobs one at a time"},
    {true, true, false, false, 0, "", "", false, "not consuming: starting"},
    {true, true, true, true, 0, "", "", false, "shutting down"},
    {false, false, false, true, 0, "x", "y", false, "shutting down"},
    /* consuming with the broker gone cannot be; the broker wins */
    {false, true, true, false, 0, "lost", "", false, "not connected to the broker: lost"},
};

START_TEST(test_ready)
{
    struct worker_metrics m;
    char why[256];

    worker_metrics_init(&m, 0);
    m.broker_up = states[_i].broker_up;
    m.db_up = states[_i].db_up;
    m.consuming = states[_i].consuming;
    m.draining = states[_i].draining;
    m.suspects = states[_i].suspects;
    snprintf(m.broker_error, sizeof m.broker_error, "%s", states[_i].broker_error);
    snprintf(m.db_error, sizeof m.db_error, "%s", states[_i].db_error);
    ck_assert(worker_metrics_ready(&m, why, sizeof why) == states[_i].ready);
    ck_assert_str_eq(why, states[_i].why);
}
END_TEST

/* The families a dashboard and the README rely on, each with its type;
 * HELP and TYPE exactly once each. */
static const struct {
    const char *name, *type;
} families[] = {
    {"greet_jobs_total", "counter"},
    {"greet_jobs_unauthorized_total", "counter"},
    {"greet_replies_unroutable_total", "counter"},
    {"greet_replies_refused_total", "counter"},
    {"greet_replies_retried_total", "counter"},
    {"greet_lookups_total", "counter"},
    {"greet_lookup_failures_total", "counter"},
    {"greet_broker_connects_total", "counter"},
    {"greet_db_connects_total", "counter"},
    {"greet_consumer_cancels_total", "counter"},
    {"greet_jobs_in_flight", "gauge"},
    {"greet_suspects_held", "gauge"},
    {"greet_broker_connected", "gauge"},
    {"greet_db_connected", "gauge"},
    {"greet_ready", "gauge"},
    {"greet_job_duration_seconds", "histogram"},
    {"greet_lookup_duration_seconds", "histogram"},
    {"greet_confirm_latency_seconds", "histogram"},
    {"greet_process_start_time_seconds", "gauge"},
    {"greet_build_info", "gauge"},
};

static unsigned occurrences(const char *text, const char *what)
{
    unsigned n = 0;

    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

START_TEST(test_families)
{
    struct worker_metrics m;
    struct buf out = {0};
    char line[160];

    worker_metrics_init(&m, 1779000000.5);
    ck_assert(worker_metrics_render(&m, "1.2.3", &out));
    snprintf(line, sizeof line, "# TYPE %s %s\n", families[_i].name, families[_i].type);
    ck_assert_msg(occurrences(out.data, line) == 1, "%s", line);
    snprintf(line, sizeof line, "# HELP %s ", families[_i].name);
    ck_assert_msg(occurrences(out.data, line) == 1, "%s", line);
    buf_free(&out);
}
END_TEST

/* The numbers: counters from the stats, the outcome labels summing to
 * every settled job, gauges from the states, the version escaped. */
START_TEST(test_values)
{
    struct worker_metrics m;
    struct buf out = {0};
    static const char *const want[] = {
        "greet_jobs_total{outcome=\"ok\"} 70\n",
        "greet_jobs_total{outcome=\"dead\"} 5\n",
        "greet_jobs_total{outcome=\"returned\"} 1\n",
        "greet_jobs_unauthorized_total 4\n",
        "greet_replies_unroutable_total 2\n",
        "greet_replies_refused_total 3\n",
        "greet_replies_retried_total 9\n",
        "greet_lookups_total 4\n",
        "greet_lookup_failures_total 1\n",
        "greet_broker_connects_total 2\n",
        "greet_db_connects_total 3\n",
        "greet_consumer_cancels_total 1\n",
        "greet_jobs_in_flight 12\n",
        "greet_suspects_held 2\n",
        "greet_broker_connected 1\n",
        "greet_db_connected 0\n",
        "greet_ready 0\n",
        "greet_job_duration_seconds_bucket{le=\"0.001\"} 1\n",
        "greet_job_duration_seconds_bucket{le=\"+Inf\"} 2\n",
        "greet_job_duration_seconds_count 2\n",
        "greet_job_duration_seconds_sum 100.0005\n",
        "greet_lookup_duration_seconds_count 0\n",
        "greet_process_start_time_seconds 1779000000.5\n",
        "greet_build_info{version=\"1.2\\\"3\"} 1\n",
    };

    worker_metrics_init(&m, 1779000000.5);
    m.stats.jobs_ok = 70;
    m.stats.jobs_failed = 5;
    m.stats.jobs_unauthorized = 4;
    m.stats.jobs_returned = 1;
    m.stats.replies_unroutable = 2;
    m.stats.replies_refused = 3;
    m.stats.replies_retried = 9;
    m.stats.lookups = 4;
    m.stats.lookup_failures = 1;
    m.stats.db_connects = 3;
    m.stats.consumer_cancels = 1;
    m.broker_connects = 2;
    m.in_flight = 12;
    m.suspects = 2;
    m.broker_up = true;
    histogram_observe(&m.job_seconds, 0.0005);
    histogram_observe(&m.job_seconds, 100);
    ck_assert(worker_metrics_render(&m, "1.2\"3", &out));
    for (unsigned i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_msg(strstr(out.data, want[i]) != NULL, "missing: %s", want[i]);
    buf_free(&out);
}
END_TEST

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_ready, 0, sizeof states / sizeof states[0]);
    tcase_add_loop_test(tc, test_families, 0, sizeof families / sizeof families[0]);
    tcase_add_test(tc, test_values);
    suite_add_tcase(s, tc);
    return s;
}
