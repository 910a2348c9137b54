/* test_jobsource.c - producer input lines and flags to job bodies. */
#include "jobsource.h"
#include "suites.h"

#include <string.h>

static const struct {
    const char *line;
    bool ok;
    const char *body;    /* when ok */
    const char *job_id;  /* when ok */
    const char *err_has; /* when not */
} lines[] = {
    {"{\"job_id\":\"a\",\"user_id\":3}", true, "{\"job_id\":\"a\",\"user_id\":3}", "a", NULL},
    {"{\"user_id\":3}", true, "{\"user_id\":3,\"job_id\":\"gen-1\"}", "gen-1", NULL},
    {"{\"name\":\"Zo\xc3\xab\",\"note\":1}", true,
     "{\"name\":\"Zo\xc3\xab\",\"note\":1,\"job_id\":\"gen-1\"}", "gen-1", NULL},
    {"  {\"job_id\" : \"b\"}  ", true, "{\"job_id\":\"b\"}", "b", NULL},
    {"{\"job_id\":\"a\",\"user_id\":0}", false, NULL, NULL, "user_id must be an integer >= 1"},
    {"{\"job_id\":\"\"}", false, NULL, NULL, "1 to 128 characters"},
    {"{\"name\":\"\"}", false, NULL, NULL, "name must be 1 to 200"},
    {"[1]", false, NULL, NULL, "must be a JSON object"},
    {"{nope", false, NULL, NULL, "not valid JSON"},
    {"", false, NULL, NULL, "not valid JSON"},
};

START_TEST(test_lines)
{
    struct buf out = {0};
    char job_id[600], err[256] = "";
    bool ok = jobsource_from_line(lines[_i].line, strlen(lines[_i].line), "gen-1", &out, job_id,
                                  sizeof job_id, err, sizeof err);

    ck_assert_msg(ok == lines[_i].ok, "case %d: %s", _i, err);
    if (ok) {
        ck_assert_str_eq(out.data, lines[_i].body);
        ck_assert_str_eq(job_id, lines[_i].job_id);
    } else {
        ck_assert_msg(strstr(err, lines[_i].err_has) != NULL, "case %d: '%s'", _i, err);
    }
    buf_free(&out);
}
END_TEST

static const struct {
    const char *job_id;
    long long user_id;
    const char *name;
    bool ok;
    const char *body;
} fields[] = {
    {"j", 0, NULL, true, "{\"job_id\":\"j\"}"},
    {"j", 5, "Ada", true, "{\"job_id\":\"j\",\"user_id\":5,\"name\":\"Ada\"}"},
    {"", 0, NULL, false, NULL},
    {"j", 0, "", false, NULL},
    {"j", 0, "\xff", false, NULL},
    {"j\x01", 0, NULL, false, NULL},
    {"a\"b\\", 3, "\"Bo\"", true,
     "{\"job_id\":\"a\\\"b\\\\\",\"user_id\":3,\"name\":\"\\\"Bo\\\"\"}"},
};

START_TEST(test_fields)
{
    struct buf out = {0};
    char err[256];
    bool ok = jobsource_from_fields(fields[_i].job_id, fields[_i].user_id, fields[_i].name, &out,
                                    err, sizeof err);

    ck_assert_msg(ok == fields[_i].ok, "case %d: %s", _i, err);
    if (ok)
        ck_assert_str_eq(out.data, fields[_i].body);
    buf_free(&out);
}
END_TEST

/* The synthetic load's writer: unchecked, but any job_id comes out as
 * JSON, so a quote in --id-prefix never makes a poison job. */
static const struct {
    const char *job_id;
    long long user_id;
    const char *name;
    const char *body;
} writes[] = {
    {"run-1", 7, NULL, "{\"job_id\":\"run-1\",\"user_id\":7}"},
    {"q\"\\-1", 1, NULL, "{\"job_id\":\"q\\\"\\\\-1\",\"user_id\":1}"},
    {"j", 9223372036854775807LL, NULL, "{\"job_id\":\"j\",\"user_id\":9223372036854775807}"},
    {"j", 0, "Zo\xc3\xab", "{\"job_id\":\"j\",\"name\":\"Zo\xc3\xab\"}"},
};

START_TEST(test_write)
{
    struct buf out = {0};
    struct job job;
    char detail[256];

    ck_assert(buf_append_str(&out, "stale"));
    ck_assert(jobsource_write(&out, writes[_i].job_id, writes[_i].user_id, writes[_i].name));
    ck_assert_str_eq(out.data, writes[_i].body);
    ck_assert_int_eq(job_decode(out.data, out.len, &job, detail, sizeof detail), JOB_OK);
    ck_assert_str_eq(job.job_id, writes[_i].job_id);
    ck_assert_int_eq(job.user_id, writes[_i].user_id);
    buf_free(&out);
}
END_TEST

/* A token added to a job body: the last key, the body still a job with
 * that token; what is not an object is refused. */
static const struct {
    const char *body;
    const char *token;
    const char *want; /* NULL: refused */
} tokens[] = {
    {"{\"job_id\":\"j\",\"user_id\":7}", "a.b.c",
     "{\"job_id\":\"j\",\"user_id\":7,\"token\":\"a.b.c\"}"},
    {"{\"job_id\":\"j\"}\n", "x\"y", "{\"job_id\":\"j\",\"token\":\"x\\\"y\"}"},
    {"{ }", "t", "{ \"token\":\"t\"}"},
    {"[1]", "t", NULL},
    {"{", "t", NULL},
    {"", "t", NULL},
};

START_TEST(test_add_token)
{
    struct buf body = {0};
    struct job job;
    char detail[256];
    bool ok;

    ck_assert(buf_append_str(&body, tokens[_i].body));
    ok = jobsource_add_token(&body, tokens[_i].token);
    ck_assert_msg(ok == (tokens[_i].want != NULL), "case %d", _i);
    if (ok) {
        ck_assert_str_eq(body.data, tokens[_i].want);
        ck_assert_int_eq(strlen(body.data), body.len);
        if (strstr(body.data, "job_id") != NULL) {
            ck_assert_int_eq(job_decode(body.data, body.len, &job, detail, sizeof detail), JOB_OK);
            ck_assert_int_eq(job.token_state, JOB_TOKEN_STRING);
            ck_assert_str_eq(job.token, tokens[_i].token);
        }
    }
    buf_free(&body);
}
END_TEST

START_TEST(test_make_id)
{
    char id[64];

    jobsource_make_id(id, sizeof id, "run7", 42);
    ck_assert_str_eq(id, "run7-42");
}
END_TEST

Suite *jobsource_suite(void)
{
    Suite *s = suite_create("jobsource");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_lines, 0, sizeof lines / sizeof lines[0]);
    tcase_add_loop_test(tc, test_fields, 0, sizeof fields / sizeof fields[0]);
    tcase_add_loop_test(tc, test_write, 0, sizeof writes / sizeof writes[0]);
    tcase_add_loop_test(tc, test_add_token, 0, sizeof tokens / sizeof tokens[0]);
    tcase_add_test(tc, test_make_id);
    suite_add_tcase(s, tc);
    return s;
}
