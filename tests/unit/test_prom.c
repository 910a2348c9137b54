/* test_prom.c - the Prometheus text format, histograms, and the HTTP
 * listen address, as tables of cases. */
#include "http_addr.h"
#include "prom.h"
#include "suites.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Samples: how a value and its labels are written. */
static const struct {
    const char *name, *labels;
    double value;
    const char *want;
} samples[] = {
    {"a_total", NULL, 0, "a_total 0\n"},
    {"a_total", "", 3, "a_total 3\n"},
    {"g", "k=\"v\"", 0.25, "g{k=\"v\"} 0.25\n"},
    {"g", NULL, 10, "g 10\n"},
    {"g", NULL, 30, "g 30\n"},
    {"g", NULL, 0.0005, "g 0.0005\n"},
    {"g", NULL, 1e-7, "g 1e-07\n"},
    {"g", NULL, 1.5e15, "g 1.5e+15\n"},
    {"g", NULL, -2.5, "g -2.5\n"},
    {"g", NULL, 1779000000.123, "g 1779000000.123\n"},
    {"g", NULL, 0.1 + 0.2, "g 0.30000000000000004\n"},
    {"g", NULL, INFINITY, "g +Inf\n"},
    {"g", NULL, -INFINITY, "g -Inf\n"},
    {"g", NULL, NAN, "g NaN\n"},
};

START_TEST(test_sample)
{
    struct buf out = {0};

    ck_assert(prom_sample(&out, samples[_i].name, samples[_i].labels, samples[_i].value));
    ck_assert_str_eq(out.data, samples[_i].want);
    buf_free(&out);
}
END_TEST

START_TEST(test_sample_int)
{
    struct buf out = {0};

    ck_assert(prom_sample_int(&out, "n_total", NULL, 18446744073709551615ULL));
    ck_assert_str_eq(out.data, "n_total 18446744073709551615\n");
    buf_free(&out);
}
END_TEST

/* Label values and HELP text: what must be escaped, and what must not. */
static const struct {
    const char *value, *label, *help;
} escapes[] = {
    {"plain", "k=\"plain\"", "# HELP m plain\n# TYPE m gauge\n"},
    {"a\"b", "k=\"a\\\"b\"", "# HELP m a\"b\n# TYPE m gauge\n"},
    {"a\\b", "k=\"a\\\\b\"", "# HELP m a\\\\b\n# TYPE m gauge\n"},
    {"a\nb", "k=\"a\\nb\"", "# HELP m a\\nb\n# TYPE m gauge\n"},
    {"", "k=\"\"", "# HELP m \n# TYPE m gauge\n"},
    {"ünï", "k=\"ünï\"", "# HELP m ünï\n# TYPE m gauge\n"},
};

START_TEST(test_escape)
{
    struct buf label = {0}, help = {0};

    ck_assert(prom_label(&label, "k", escapes[_i].value));
    ck_assert_str_eq(label.data, escapes[_i].label);
    ck_assert(prom_family(&help, "m", "gauge", escapes[_i].value));
    ck_assert_str_eq(help.data, escapes[_i].help);
    buf_free(&label);
    buf_free(&help);
}
END_TEST

START_TEST(test_labels_join)
{
    struct buf label = {0};

    ck_assert(prom_label(&label, "a", "1") && prom_label(&label, "b", "2"));
    ck_assert_str_eq(label.data, "a=\"1\",b=\"2\"");
    buf_free(&label);
}
END_TEST

/* Observations, and the buckets they land in: a bound holds what equals
 * it (le), NaN is dropped, above every bound is +Inf only. */
static const struct {
    double observe[6];
    unsigned n;
    unsigned long long want[4]; /* cumulative: le 1, 2, 5, +Inf */
    double sum;
} observations[] = {
    {{0}, 0, {0, 0, 0, 0}, 0},
    {{1}, 1, {1, 1, 1, 1}, 1},
    {{1.0000001}, 1, {0, 1, 1, 1}, 1.0000001},
    {{0.5, 2, 5, 6}, 4, {1, 2, 3, 4}, 13.5},
    {{-1, 100, 1e300}, 3, {1, 1, 1, 3}, 1e300},
    {{NAN, 1}, 2, {1, 1, 1, 1}, 1},
    {{INFINITY}, 1, {0, 0, 0, 1}, INFINITY},
};

START_TEST(test_histogram)
{
    static const double bounds[] = {1, 2, 5};
    struct histogram h;
    struct buf out = {0};
    char want[1024];

    histogram_init(&h, bounds, 3);
    for (unsigned i = 0; i < observations[_i].n; i++)
        histogram_observe(&h, observations[_i].observe[i]);
    ck_assert_uint_eq(histogram_count(&h), observations[_i].want[3]);
    ck_assert(prom_histogram(&out, "d_seconds", "Help.", &h));
    {
        struct buf sum = {0};
        prom_sample(&sum, "d_seconds_sum", NULL, observations[_i].sum);
        snprintf(want, sizeof want,
                 "# HELP d_seconds Help.\n# TYPE d_seconds histogram\n"
                 "d_seconds_bucket{le=\"1\"} %llu\nd_seconds_bucket{le=\"2\"} %llu\n"
                 "d_seconds_bucket{le=\"5\"} %llu\nd_seconds_bucket{le=\"+Inf\"} %llu\n"
                 "%sd_seconds_count %llu\n",
                 observations[_i].want[0], observations[_i].want[1], observations[_i].want[2],
                 observations[_i].want[3], sum.data, observations[_i].want[3]);
        buf_free(&sum);
    }
    ck_assert_str_eq(out.data, want);
    buf_free(&out);
}
END_TEST

START_TEST(test_histogram_too_many_bounds)
{
    double bounds[HISTOGRAM_MAX_BUCKETS + 4];
    struct histogram h;

    for (unsigned i = 0; i < HISTOGRAM_MAX_BUCKETS + 4; i++)
        bounds[i] = i + 1;
    histogram_init(&h, bounds, HISTOGRAM_MAX_BUCKETS + 4);
    ck_assert_uint_eq(h.n, HISTOGRAM_MAX_BUCKETS);
    histogram_observe(&h, 1000);
    ck_assert_uint_eq(h.counts[HISTOGRAM_MAX_BUCKETS], 1);
}
END_TEST

/* GREET_HTTP_ADDR: what is taken and what is refused, with the reason. */
static const struct {
    const char *text;
    bool ok, ipv6;
    unsigned char ip0, ip3;
    unsigned port;
    const char *error; /* a part of the message */
} addrs[] = {
    {"127.0.0.1:9464", true, false, 127, 1, 9464, NULL},
    {":9464", true, false, 0, 0, 9464, NULL},
    {"0.0.0.0:1", true, false, 0, 0, 1, NULL},
    {"localhost:65535", true, false, 127, 1, 65535, NULL},
    {"[::1]:9464", true, true, 0, 0, 9464, NULL},
    {"[::]:80", true, true, 0, 0, 80, NULL},
    {"9464", false, false, 0, 0, 0, "expected HOST:PORT"},
    {"127.0.0.1", false, false, 0, 0, 0, "expected HOST:PORT"},
    {"127.0.0.1:", false, false, 0, 0, 0, "port must be a number"},
    {"127.0.0.1:0", false, false, 0, 0, 0, "port must be a number"},
    {"127.0.0.1:65536", false, false, 0, 0, 0, "port must be a number"},
    {"127.0.0.1:-1", false, false, 0, 0, 0, "port must be a number"},
    {"127.0.0.1:+80", false, false, 0, 0, 0, "port must be a number"},
    {"127.0.0.1:80x", false, false, 0, 0, 0, "port must be a number"},
    {"127.0.0.1:99999999999999999999", false, false, 0, 0, 0, "port must be a number"},
    {"example.com:80", false, false, 0, 0, 0, "not an IPv4 address"},
    {"1.2.3:80", false, false, 0, 0, 0, "not an IPv4 address"},
    {"::1:9464", false, false, 0, 0, 0, "[ADDRESS]:PORT"},
    {"[::1]9464", false, false, 0, 0, 0, "[ADDRESS]:PORT"},
    {"[::1:9464", false, false, 0, 0, 0, "[ADDRESS]:PORT"},
    {"[1.2.3.4]:80", false, false, 0, 0, 0, "not an IPv6 address"},
    {"", false, false, 0, 0, 0, "expected HOST:PORT"},
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1", false, false, 0,
     0, 0, "too long"},
};

START_TEST(test_http_addr)
{
    struct http_addr a;
    char err[256] = "";
    bool ok = http_addr_parse(addrs[_i].text, &a, err, sizeof err);

    ck_assert_msg(ok == addrs[_i].ok, "'%s': %s", addrs[_i].text, err);
    if (ok) {
        ck_assert(a.ipv6 == addrs[_i].ipv6);
        ck_assert_uint_eq(a.port, addrs[_i].port);
        if (!a.ipv6) {
            ck_assert_uint_eq(a.ip[0], addrs[_i].ip0);
            ck_assert_uint_eq(a.ip[3], addrs[_i].ip3);
        }
    } else {
        ck_assert_msg(strstr(err, addrs[_i].error) != NULL, "'%s': %s", addrs[_i].text, err);
    }
}
END_TEST

Suite *prom_suite(void)
{
    Suite *s = suite_create("prom");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_sample, 0, sizeof samples / sizeof samples[0]);
    tcase_add_test(tc, test_sample_int);
    tcase_add_loop_test(tc, test_escape, 0, sizeof escapes / sizeof escapes[0]);
    tcase_add_test(tc, test_labels_join);
    tcase_add_loop_test(tc, test_histogram, 0, sizeof observations / sizeof observations[0]);
    tcase_add_test(tc, test_histogram_too_many_bounds);
    tcase_add_loop_test(tc, test_http_addr, 0, sizeof addrs / sizeof addrs[0]);
    suite_add_tcase(s, tc);
    return s;
}
