/* test_mq_url.c - broker URLs: masked for the log with librabbitmq's own
 * parser, no password left, the rest unchanged. */
#include "mq_url.h"
#include "suites.h"

#include <amqp.h>
#include <stdlib.h>
#include <string.h>

/* Every password below contains "secret" and nothing else does. */
#define SECRET "secret"

struct mq_case {
    const char *url;
    const char *masked; /* NULL: librabbitmq cannot parse url */
    const char *masked_unparsed;
};

static const struct mq_case cases[] = {
    {"amqp://guest:guest@localhost:5672/", "amqp://guest:***@localhost:5672/", NULL},
    {"amqp://u:secret@h:1234/", "amqp://u:***@h:1234/", NULL},
    {"amqps://u:secret@h/v", "amqps://u:***@h:5671/v", NULL},
    /* Defaults are spelled out: the log shows where the program goes. */
    {"amqp://user@h/", "amqp://user:***@h:5672/", NULL},
    {"amqp://h/", "amqp://guest:***@h:5672/", NULL},
    {"amqp://h", "amqp://guest:***@h:5672/%2F", NULL},
    {"amqp://", "amqp://guest:***@localhost:5672/%2F", NULL},
    /* Vhosts, percent-encoded where the URL syntax needs it. */
    {"amqp://u:secret@h:5672/%2f", "amqp://u:***@h:5672/%2F", NULL},
    {"amqp://u:secret@h/prod", "amqp://u:***@h:5672/prod", NULL},
    {"amqp://u:secret@h/my%20vhost%3Fx", "amqp://u:***@h:5672/my%20vhost%3Fx", NULL},
    {"amqp://u:secret@h/caf\xc3\xa9", "amqp://u:***@h:5672/caf\xc3\xa9", NULL},
    /* Passwords and user names holding URL delimiters, percent-encoded. */
    {"amqp://u:secret%40x@h/", "amqp://u:***@h:5672/", NULL},
    {"amqp://u:secret%3Ax%2Fy%25@h/", "amqp://u:***@h:5672/", NULL},
    {"amqp://us%40er%3A:secret@h/", "amqp://us%40er%3A:***@h:5672/", NULL},
    {"amqps://u:secret@[::1]:5673/v", "amqps://u:***@[::1]:5673/v", NULL},
    /* An empty host stays empty, not the localhost an empty host means
     * when read back (found by tests/fuzz/fuzz_mq_url.c). */
    {"amqps://u:secret@[]:5673/v", "amqps://u:***@[]:5673/v", NULL},
    /* Unparsable: only the scheme is shown. */
    {"amqp://u:secret@x@h/", NULL, "amqp://***"},
    {"amqp://u:secret:x@h/", NULL, "amqp://***"},
    {"amqp://u:secret/x@h:1/", NULL, "amqp://***"},
    {"amqp://u:secret@h:notaport/", NULL, "amqp://***"},
    {"amqps://u:secret@h/v?heartbeat=5", NULL, "amqps://***"},
    {"amqp://u:secret%zz@h/", NULL, "amqp://***"},
    {"http://u:secret@h/", NULL, "***"},
    {"u:secret@h", NULL, "***"},
    {"", NULL, "***"},
};

START_TEST(test_mask)
{
    const struct mq_case *c = &cases[_i];
    char out[512], err[512] = "";
    bool parsed = mq_url_mask(c->url, out, sizeof out, err, sizeof err);

    ck_assert_msg(strstr(out, SECRET) == NULL, "case %d leaks: '%s'", _i, out);
    ck_assert_msg(strstr(err, SECRET) == NULL, "case %d error leaks: '%s'", _i, err);
    ck_assert_msg(parsed == (c->masked != NULL), "case %d: parsed %d (%s)", _i, parsed, err);
    ck_assert_str_eq(out, parsed ? c->masked : c->masked_unparsed);
    if (!parsed)
        ck_assert_msg(strstr(err, "expected amqp://") != NULL, "case %d: '%s'", _i, err);
}
END_TEST

/* The masked URL means what the input meant: librabbitmq reads the same
 * user, host, port, vhost and TLS choice back, and "***" as password. */
START_TEST(test_same_meaning)
{
    const struct mq_case *c = &cases[_i];
    struct amqp_connection_info before, after;
    char out[512], err[512];
    char *url = strdup(c->url), *masked;

    ck_assert_ptr_nonnull(url);
    if (c->masked == NULL) {
        free(url);
        return;
    }
    ck_assert(mq_url_mask(c->url, out, sizeof out, err, sizeof err));
    masked = strdup(out);
    ck_assert_ptr_nonnull(masked);
    ck_assert_int_eq(amqp_parse_url(url, &before), AMQP_STATUS_OK);
    ck_assert_msg(amqp_parse_url(masked, &after) == AMQP_STATUS_OK, "case %d: '%s'", _i, out);
    ck_assert_str_eq(before.user, after.user);
    ck_assert_str_eq(after.password, "***");
    ck_assert_str_eq(before.host, after.host);
    ck_assert_int_eq(before.port, after.port);
    ck_assert_str_eq(before.vhost, after.vhost);
    ck_assert_int_eq(before.ssl, after.ssl);
    free(masked);
    free(url);
}
END_TEST

START_TEST(test_small_buffer)
{
    char out[8];

    /* Cut, still terminated, and a cut never exposes what follows. */
    ck_assert(mq_url_mask("amqp://guest:secret@localhost/", out, sizeof out, NULL, 0));
    ck_assert_str_eq(out, "amqp://");
    ck_assert(!mq_url_mask("amqp://u:secret@h:x/", out, 4, NULL, 0));
    ck_assert_str_eq(out, "amq");
    ck_assert(mq_url_mask("amqp://h/", out, 0, NULL, 0));
}
END_TEST

/* Lists of brokers: split at ',' or ';', each entry checked on its own,
 * a bad one named by its position, the password never shown. */
struct list_case {
    const char *list;
    int n;              /* entries; -1: refused */
    const char *masked; /* or the error's telling part */
};

static const struct list_case list_cases[] = {
    {"amqp://u:secret@h1/", 1, "amqp://u:***@h1:5672/"},
    {"amqp://u:secret@h1:1/,amqps://v:secret@h2:2/x,amqp://h3/", 3,
     "amqp://u:***@h1:1/,amqps://v:***@h2:2/x,amqp://guest:***@h3:5672/"},
    {"amqp://u:secret@h1/;amqp://u:secret@h2/", 2, "amqp://u:***@h1:5672/,amqp://u:***@h2:5672/"},
    {" amqp://u:secret@h1/ ,\tamqp://h2/\n", 2, "amqp://u:***@h1:5672/,amqp://guest:***@h2:5672/"},
    /* A comma in a password is %2C, and decoded by librabbitmq. */
    {"amqp://u:sec%2Cret@h1/,amqp://h2/", 2, "amqp://u:***@h1:5672/,amqp://guest:***@h2:5672/"},
    /* Refused: each with the position of the bad entry. */
    {"amqp://u:secret@h1/,", -1, "entry 2 of 2 is empty"},
    {",amqp://u:secret@h1/", -1, "entry 1 of 2 is empty"},
    {"amqp://u:secret@h1/,,amqp://h3/", -1, "entry 2 of 3 is empty"},
    /* A raw comma in a password splits it: the half that is no URL is named. */
    {"amqp://u:secret@h1/,amqp://u:sec,ret@h2/", -1, "entry 2 of 3: librabbitmq cannot parse"},
    {"amqp://u:secret@h1/,http://u:secret@h2/,amqp://h3/", -1,
     "entry 2 of 3: librabbitmq cannot parse '***'"},
    {"amqp://h1/;amqp://u:secret@h2:port/", -1,
     "entry 2 of 2: librabbitmq cannot parse 'amqp://***'"},
    {"amqp://u:secret@h:x/", -1, "librabbitmq cannot parse 'amqp://***'"},
    {"", -1, "empty"},
    {"  ", -1, "empty"},
    {",,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,", -1, "entries: at most 32"},
};

START_TEST(test_list)
{
    const struct list_case *c = &list_cases[_i];
    struct mq_url_list list;
    char out[1024], err[512] = "";
    bool ok = mq_url_list_parse(c->list, &list, err, sizeof err);

    ck_assert_msg(ok == (c->n >= 0), "case %d: parsed %d (%s)", _i, ok, err);
    ck_assert_msg(strstr(err, SECRET) == NULL, "case %d error leaks: '%s'", _i, err);
    if (ok)
        ck_assert_int_eq(list.n, c->n);
    else
        ck_assert_msg(strstr(err, c->masked) != NULL, "case %d: '%s'", _i, err);
    ck_assert_int_eq(mq_url_list_mask(c->list, out, sizeof out, err, sizeof err), ok);
    ck_assert_msg(strstr(out, SECRET) == NULL, "case %d leaks: '%s'", _i, out);
    ck_assert_str_eq(out, ok ? c->masked : "***");
    for (unsigned i = 0; ok && i < list.n; i++)
        ck_assert_msg(strchr(list.urls[i], ',') == NULL && strchr(list.urls[i], ' ') == NULL,
                      "case %d entry %u: '%s'", _i, i, list.urls[i]);
}
END_TEST

START_TEST(test_list_too_long)
{
    struct mq_url_list list;
    char long_list[MQ_URL_LIST_BYTES + 16], err[256] = "";

    memset(long_list, 'h', sizeof long_list - 1);
    long_list[sizeof long_list - 1] = '\0';
    memcpy(long_list, "amqp://", 7);
    ck_assert(!mq_url_list_parse(long_list, &list, err, sizeof err));
    ck_assert_msg(strstr(err, "at most 4095") != NULL, "%s", err);
}
END_TEST

Suite *mq_url_suite(void)
{
    Suite *s = suite_create("mq_url");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_mask, 0, sizeof cases / sizeof cases[0]);
    tcase_add_loop_test(tc, test_same_meaning, 0, sizeof cases / sizeof cases[0]);
    tcase_add_test(tc, test_small_buffer);
    tcase_add_loop_test(tc, test_list, 0, sizeof list_cases / sizeof list_cases[0]);
    tcase_add_test(tc, test_list_too_long);
    suite_add_tcase(s, tc);
    return s;
}
