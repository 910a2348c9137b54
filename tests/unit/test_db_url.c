/* test_db_url.c - libpq connection strings and URIs: masked for the log
 * with libpq's own parser, no secret left, the rest unchanged. */
#include "db_url.h"
#include "suites.h"

#include <libpq-fe.h>
#include <string.h>

/* Every secret below contains "secret" and nothing else does, so one
 * strstr() proves a case leaks nothing, whether it parses or not. */
#define SECRET "secret"

struct db_case {
    const char *url;
    bool parses;
    /* Substrings the masked URL keeps (parses) or the error holds (not). */
    const char *shows[6];
};

static const struct db_case cases[] = {
    /* The five forms the hand-written masker missed. */
    {"postgresql://u:secret?x@host/db", true, {"host=host", "dbname=db", "user=u", "password=***"}},
    {"postgresql://db/greet?%70assword=secret&user=a", true, {"host=db", "dbname=greet", "user=a"}},
    {"postgresql://db/greet?sslpassword=secret", true, {"host=db", "sslpassword=***"}},
    {"postgresql://app@db/greet?sslmode=require&sslpassword=secret",
     true,
     {"user=app", "sslmode=require", "sslpassword=***"}},
    {"host=db sslpassword=secret dbname=greet",
     true,
     {"host=db", "dbname=greet", "sslpassword=***"}},
    {"host=db\npassword=secret dbname=greet", true, {"host=db", "dbname=greet", "password=***"}},
    {"host=db\r\npassword=secret\vdbname=greet\f", true, {"host=db", "dbname=greet"}},
    {"host=db\tpassword=secret\tdbname=greet", true, {"host=db", "dbname=greet"}},
    {"host=db password=public\\ secret dbname=greet", true, {"host=db", "dbname=greet"}},
    {"host=db password='public\\ secret' dbname=greet", true, {"host=db", "dbname=greet"}},
    /* URIs: userinfo, query, percent-encoding, several hosts. */
    {"postgresql://app:secret@db:5432/greet?sslmode=require",
     true,
     {"host=db", "port=5432", "dbname=greet", "user=app", "sslmode=require"}},
    {"postgres://app:secret%40x@db/greet", true, {"host=db", "user=app", "password=***"}},
    {"postgresql://db/greet?user=a&password=secret&application_name=x",
     true,
     {"host=db", "user=a", "application_name=x", "password=***"}},
    {"postgresql://app:secret@h1:5432,h2:5433/greet", true, {"host=h1,h2", "port=5432,5433"}},
    {"postgresql://app:secret@h1,h2:5433/"
     "greet?target_session_attrs=prefer-standby&connect_timeout=2",
     true,
     {"host=h1,h2", "port=,5433", "target_session_attrs=prefer-standby", "connect_timeout=2"}},
    {"postgresql://app:secret@[::1]:5432/greet", true, {"host=::1", "port=5432"}},
    /* Keyword strings: quoting and escapes. */
    {"host=db user=app password=secret dbname=greet",
     true,
     {"host=db", "user=app", "dbname=greet", "password=***"}},
    {"host=db password='a secret' dbname=greet", true, {"host=db", "dbname=greet"}},
    {"host=db password='it\\'s secret' dbname=greet", true, {"host=db", "dbname=greet"}},
    {"host=db password = 'a b\\' c secret' dbname=g", true, {"host=db", "dbname=g"}},
    {"password=secret", true, {"password=***"}},
    {"host=db application_name='a b' dbname=greet", true, {"application_name='a b'"}},
    /* An empty password is masked too: the log does not say it is empty. */
    {"host=db password='' dbname=greet", true, {"host=db", "dbname=greet", "password=***"}},
    {"postgresql://app:@db/greet", true, {"host=db", "user=app"}},
    /* No password: nothing masked, nothing lost. */
    {"host=db user=app dbname=greet", true, {"host=db", "user=app", "dbname=greet"}},
    {"host=db passfile=/run/pgpass", true, {"host=db", "passfile=/run/pgpass"}},
    {"postgresql:///greet", true, {"dbname=greet"}},
    {"", true, {""}},
    /* Unparsable: libpq's reason, without what it quotes from the input. */
    {"host=x password=secret port", false, {"missing \"=\" after \"port\""}},
    {"host=x password=public secret", false, {"missing \"=\" after \"***\""}},
    {"host=x password=public secret=1", false, {"invalid connection option \"***\""}},
    {"host=x password='secret", false, {"unterminated quoted string"}},
    {"postgresql://u:secret@[::1", false, {"IPv6", "URI: \"***\""}},
    {"postgresql://u:secret%zz@db/greet", false, {"percent-encoded"}},
    {"postgresql://db/greet?password=secret&secret", false, {"\"=\"", "\"***\""}},
    {"host=x pass\"word=secret", false, {"withheld"}},
    {"secret", false, {"missing"}},
};

START_TEST(test_mask)
{
    const struct db_case *c = &cases[_i];
    char out[512], err[512] = "";
    bool parsed = db_url_mask(c->url, out, sizeof out, err, sizeof err);
    const char *shown = parsed ? out : err;

    ck_assert_msg(strstr(out, SECRET) == NULL, "case %d leaks: '%s'", _i, out);
    ck_assert_msg(strstr(err, SECRET) == NULL, "case %d error leaks: '%s'", _i, err);
    ck_assert_msg(parsed == c->parses, "case %d: parsed %d, want %d (%s)", _i, parsed, c->parses,
                  err);
    for (int i = 0; c->shows[i]; i++)
        ck_assert_msg(strstr(shown, c->shows[i]) != NULL, "case %d: '%s' lacks '%s'", _i, shown,
                      c->shows[i]);
    if (!parsed)
        ck_assert_msg(strcmp(out, "***") == 0 || strcmp(out, "postgresql://***") == 0,
                      "case %d: unparsable shown as '%s'", _i, out);
}
END_TEST

static bool is_secret(const char *keyword)
{
    return strcmp(keyword, "password") == 0 || strcmp(keyword, "sslpassword") == 0;
}

/* The masked string means what the input meant: libpq reads the same
 * value for every keyword, "***" for each secret that was given. */
START_TEST(test_same_meaning)
{
    const struct db_case *c = &cases[_i];
    char out[512], err[512];
    char *parse_error = NULL;
    PQconninfoOption *before, *after;

    if (!c->parses)
        return;
    ck_assert(db_url_mask(c->url, out, sizeof out, err, sizeof err));
    before = PQconninfoParse(c->url, &parse_error);
    after = PQconninfoParse(out, &parse_error);
    ck_assert_msg(before != NULL && after != NULL, "case %d: '%s' does not parse back", _i, out);
    for (int i = 0; before[i].keyword; i++) {
        const char *was = before[i].val, *now = after[i].val;

        ck_assert_str_eq(before[i].keyword, after[i].keyword);
        if (was == NULL)
            ck_assert_msg(now == NULL, "case %d: %s appeared", _i, before[i].keyword);
        else if (is_secret(before[i].keyword))
            ck_assert_msg(now && strcmp(now, "***") == 0, "case %d: %s", _i, before[i].keyword);
        else
            ck_assert_msg(now && strcmp(was, now) == 0, "case %d: %s '%s' became '%s'", _i,
                          before[i].keyword, was, now ? now : "(null)");
    }
    PQconninfoFree(before);
    PQconninfoFree(after);
}
END_TEST

START_TEST(test_small_buffer)
{
    char out[12], err[8];

    /* Cut, still terminated, and a cut never exposes what follows. */
    ck_assert(db_url_mask("host=db password=secret dbname=greet", out, sizeof out, err, 0));
    ck_assert_uint_eq(strlen(out), sizeof out - 1);
    ck_assert_ptr_null(strstr(out, SECRET));
    ck_assert(!db_url_mask("host=x password=secret port", out, sizeof out, err, sizeof err));
    ck_assert_uint_eq(strlen(err), sizeof err - 1);
    ck_assert(db_url_mask("host=db", out, 0, NULL, 0));
}
END_TEST

Suite *db_url_suite(void)
{
    Suite *s = suite_create("db_url");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_mask, 0, sizeof cases / sizeof cases[0]);
    tcase_add_loop_test(tc, test_same_meaning, 0, sizeof cases / sizeof cases[0]);
    tcase_add_test(tc, test_small_buffer);
    suite_add_tcase(s, tc);
    return s;
}
