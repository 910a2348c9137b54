/* test_job.c - every validation rule of the contract's "A job". */
#include "job.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job_case {
    const char *body;
    enum job_status status;
    const char *job_id;     /* expected job_id ("" when none could be read) */
    long long user_id;      /* 0: none */
    const char *name;       /* NULL: none */
    const char *detail_has; /* for failures */
};

static const struct job_case cases[] = {
    /* Good jobs. */
    {"{\"job_id\":\"j1\"}", JOB_OK, "j1", 0, NULL, NULL},
    {"{\"job_id\":\"j1\",\"user_id\":42}", JOB_OK, "j1", 42, NULL, NULL},
    {"{\"job_id\":\"j1\",\"user_id\":9223372036854775807}", JOB_OK, "j1", 9223372036854775807LL,
     NULL, NULL},
    {"{\"job_id\":\"j1\",\"name\":\"Ada\"}", JOB_OK, "j1", 0, "Ada", NULL},
    {"{\"job_id\":\"j1\",\"user_id\":1,\"name\":\"Zo\xc3\xab\"}", JOB_OK, "j1", 1, "Zo\xc3\xab",
     NULL},
    {"{\"job_id\":\"j1\",\"name\":\"\\u00e9\\ud83d\\ude00\"}", JOB_OK, "j1", 0,
     "\xc3\xa9\xf0\x9f\x98\x80", NULL},
    {" {\"name\":\"x\", \"job_id\":\"j1\"} \n", JOB_OK, "j1", 0, "x", NULL},
    {"{\"job_id\":\"j1\",\"extra\":[1,{\"a\":null}],\"priority\":3}", JOB_OK, "j1", 0, NULL, NULL},
    {"{\"job_id\":\"j1\",\"user_id\":null,\"name\":null}", JOB_OK, "j1", 0, NULL, NULL},
    {"{\"job_id\":\"{name}\",\"name\":\"{name}\"}", JOB_OK, "{name}", 0, "{name}", NULL},
    {"{\"job_id\":\"with space and \\\"quotes\\\"\"}", JOB_OK, "with space and \"quotes\"", 0, NULL,
     NULL},

    /* Forward compatibility: an ignored key is ignored whatever number it
     * holds, even one jansson cannot represent (issue 7, defect 5). */
    {"{\"job_id\":\"x\",\"other\":1e400}", JOB_OK, "x", 0, NULL, NULL},
    {"{\"job_id\":\"x\",\"other\":-1E+400}", JOB_OK, "x", 0, NULL, NULL},
    {"{\"job_id\":\"x\",\"other\":123456789012345678901234567890}", JOB_OK, "x", 0, NULL, NULL},
    {"{\"job_id\":\"x\",\"other\":-123456789012345678901234567890}", JOB_OK, "x", 0, NULL, NULL},
    {"{\"job_id\":\"x\",\"other\":1e-400,\"zero\":-0,\"real\":-0.0}", JOB_OK, "x", 0, NULL, NULL},
    {"{\"other\":1e400,\"job_id\":\"x\",\"user_id\":7,\"name\":\"Ada\"}", JOB_OK, "x", 7, "Ada",
     NULL},
    {"{\"job_id\":\"x\",\"a\":[1e400,{\"b\":-99999999999999999999}],\"c\":{\"d\":[[9e999]]}}",
     JOB_OK, "x", 0, NULL, NULL},
    /* user_id stays exact next to a huge ignored number. */
    {"{\"job_id\":\"x\",\"user_id\":9223372036854775807,\"n\":9223372036854775808}", JOB_OK, "x",
     9223372036854775807LL, NULL, NULL},
    /* Number-like text inside strings is left alone. */
    {"{\"job_id\":\"1e400\",\"name\":\"\\\"-1e400\",\"o\":1e400}", JOB_OK, "1e400", 0, "\"-1e400",
     NULL},

    /* Not JSON. */
    {"", JOB_INVALID_JSON, "", 0, NULL, "not valid JSON"},
    {"{", JOB_INVALID_JSON, "", 0, NULL, "not valid JSON"},
    {"{\"job_id\":\"j1\"} trailing", JOB_INVALID_JSON, "", 0, NULL, "not valid JSON"},
    {"{\"job_id\":\"j1\",}", JOB_INVALID_JSON, "", 0, NULL, "not valid JSON"},
    {"{\"job_id\":\"\xff\"}", JOB_INVALID_JSON, "", 0, NULL, "not valid JSON"},
    {"{\"job_id\":\"\xc3\"}", JOB_INVALID_JSON, "", 0, NULL, "not valid JSON"},
    {"{\"job_id\":\"\xed\xa0\x80\"}", JOB_INVALID_JSON, "", 0, NULL, "not valid JSON"},
    {"{\"job_id\":\"a\",\"job_id\":\"b\"}", JOB_INVALID_JSON, "", 0, NULL, "duplicate"},
    /* A huge number does not make broken JSON pass, nor hide where it breaks. */
    {"{\"job_id\":\"j1\",\"o\":1e400-5}", JOB_INVALID_JSON, "", 0, NULL, "not valid JSON"},
    {"{\"job_id\":\"j1\",\"o\":2-1e400}", JOB_INVALID_JSON, "", 0, NULL, "not valid JSON"},
    {"{\"job_id\":\"j1\",\"user_id\":2-9223372036854775809}", JOB_INVALID_JSON, "", 0, NULL,
     "not valid JSON"},
    {"{\"job_id\":\"j1\",\"o\":1e400,\"p\":0123456789012345678901}", JOB_INVALID_JSON, "", 0, NULL,
     "not valid JSON"},
    {"{\"job_id\":\"j1\",\"o\":1e400,}", JOB_INVALID_JSON, "", 0, NULL, "(line 1, column 26)"},
    {"{\"job_id\":\"j1\",\"o\":1e400,\"o\":1}", JOB_INVALID_JSON, "", 0, NULL, "duplicate"},

    /* JSON, but not a job object. */
    {"[]", JOB_INVALID_JOB, "", 0, NULL, "must be a JSON object"},
    {"\"j1\"", JOB_INVALID_JOB, "", 0, NULL, "must be a JSON object"},
    {"42", JOB_INVALID_JOB, "", 0, NULL, "must be a JSON object"},
    {"null", JOB_INVALID_JOB, "", 0, NULL, "must be a JSON object"},

    /* job_id. */
    {"{}", JOB_INVALID_JOB, "", 0, NULL, "job_id is required"},
    {"{\"user_id\":1}", JOB_INVALID_JOB, "", 0, NULL, "job_id is required"},
    {"{\"job_id\":null}", JOB_INVALID_JOB, "", 0, NULL, "job_id must be a string"},
    {"{\"job_id\":7}", JOB_INVALID_JOB, "", 0, NULL, "job_id must be a string"},
    {"{\"job_id\":1e400}", JOB_INVALID_JOB, "", 0, NULL, "job_id must be a string"},
    {"{\"job_id\":123456789012345678901234567890}", JOB_INVALID_JOB, "", 0, NULL,
     "job_id must be a string"},
    {"{\"job_id\":\"\"}", JOB_INVALID_JOB, "", 0, NULL, "1 to 128 characters, got 0"},
    {"{\"job_id\":\"a\\tb\"}", JOB_INVALID_JOB, "", 0, NULL, "job_id contains a control character"},
    {"{\"job_id\":\"a\\u0000b\"}", JOB_INVALID_JOB, "", 0, NULL,
     "job_id contains a control character"},
    {"{\"job_id\":\"a\\u007f\"}", JOB_INVALID_JOB, "", 0, NULL, "control character"},
    {"{\"job_id\":\"a\\u0085\"}", JOB_INVALID_JOB, "", 0, NULL, "control character"},

    /* user_id: the job_id is still reported. */
    {"{\"job_id\":\"j1\",\"user_id\":0}", JOB_INVALID_JOB, "j1", 0, NULL,
     "user_id must be an integer >= 1"},
    {"{\"job_id\":\"j1\",\"user_id\":-5}", JOB_INVALID_JOB, "j1", 0, NULL, "user_id"},
    {"{\"job_id\":\"j1\",\"user_id\":1.5}", JOB_INVALID_JOB, "j1", 0, NULL, "user_id"},
    {"{\"job_id\":\"j1\",\"user_id\":1.0}", JOB_INVALID_JOB, "j1", 0, NULL, "user_id"},
    {"{\"job_id\":\"j1\",\"user_id\":\"42\"}", JOB_INVALID_JOB, "j1", 0, NULL, "user_id"},
    {"{\"job_id\":\"j1\",\"user_id\":true}", JOB_INVALID_JOB, "j1", 0, NULL, "user_id"},
    {"{\"job_id\":\"j1\",\"user_id\":-0}", JOB_INVALID_JOB, "j1", 0, NULL,
     "user_id must be an integer >= 1"},
    /* Out of range: still an invalid user_id, and the job_id is known. */
    {"{\"job_id\":\"j1\",\"user_id\":99999999999999999999}", JOB_INVALID_JOB, "j1", 0, NULL,
     "user_id must be an integer >= 1"},
    {"{\"job_id\":\"j1\",\"user_id\":9223372036854775808}", JOB_INVALID_JOB, "j1", 0, NULL,
     "user_id must be an integer >= 1"},
    {"{\"job_id\":\"j1\",\"user_id\":123456789012345678901234567890}", JOB_INVALID_JOB, "j1", 0,
     NULL, "user_id must be an integer >= 1"},
    {"{\"job_id\":\"j1\",\"user_id\":-123456789012345678901234567890}", JOB_INVALID_JOB, "j1", 0,
     NULL, "user_id must be an integer >= 1"},
    {"{\"job_id\":\"j1\",\"user_id\":1e400}", JOB_INVALID_JOB, "j1", 0, NULL,
     "user_id must be an integer >= 1"},
    {"{\"user_id\":-1e400,\"job_id\":\"j1\"}", JOB_INVALID_JOB, "j1", 0, NULL,
     "user_id must be an integer >= 1"},
    {"{\"job_id\":\"j1\",\"user_id\":1e2}", JOB_INVALID_JOB, "j1", 0, NULL, "user_id"},

    /* name. */
    {"{\"job_id\":\"j1\",\"name\":\"\"}", JOB_INVALID_JOB, "j1", 0, NULL,
     "name must be 1 to 200 characters, got 0"},
    {"{\"job_id\":\"j1\",\"name\":5}", JOB_INVALID_JOB, "j1", 0, NULL, "name must be a string"},
    {"{\"job_id\":\"j1\",\"name\":1e400}", JOB_INVALID_JOB, "j1", 0, NULL, "name must be a string"},
    {"{\"job_id\":\"j1\",\"name\":-99999999999999999999}", JOB_INVALID_JOB, "j1", 0, NULL,
     "name must be a string"},
    {"{\"job_id\":\"j1\",\"name\":[\"a\"]}", JOB_INVALID_JOB, "j1", 0, NULL,
     "name must be a string"},
    {"{\"job_id\":\"j1\",\"name\":\"a\\nb\"}", JOB_INVALID_JOB, "j1", 0, NULL,
     "name contains a control character"},
    {"{\"job_id\":\"j1\",\"name\":\"\\u001b[31m\"}", JOB_INVALID_JOB, "j1", 0, NULL,
     "control character"},
};

static void check_case(const struct job_case *c, const char *body, size_t len, int index)
{
    struct job job;
    char detail[256];
    enum job_status status = job_decode(body, len, &job, detail, sizeof detail);

    ck_assert_msg(status == c->status, "case %d (%s): status %d, want %d (%s)", index, body, status,
                  c->status, detail);
    ck_assert_msg(strcmp(job.job_id, c->job_id) == 0, "case %d: job_id '%s', want '%s'", index,
                  job.job_id, c->job_id);
    if (status == JOB_OK) {
        ck_assert_int_eq(job.has_user_id, c->user_id != 0);
        ck_assert_int_eq(job.user_id, c->user_id);
        ck_assert_int_eq(job.has_name, c->name != NULL);
        if (c->name)
            ck_assert_str_eq(job.name, c->name);
    } else {
        ck_assert_msg(strstr(detail, c->detail_has) != NULL, "case %d: detail '%s' lacks '%s'",
                      index, detail, c->detail_has);
    }
}

START_TEST(test_table)
{
    check_case(&cases[_i], cases[_i].body, strlen(cases[_i].body), _i);
}
END_TEST

/* A JSON string of n copies of the UTF-8 sequence unit, as a job field. */
static char *job_with(const char *field, const char *unit, size_t n)
{
    size_t unit_len = strlen(unit);
    char *body = malloc(64 + n * unit_len);
    char *p = body;

    p += sprintf(p, "{\"job_id\":\"");
    if (strcmp(field, "job_id") == 0) {
        for (size_t i = 0; i < n; i++, p += unit_len)
            memcpy(p, unit, unit_len);
        p += sprintf(p, "\"}");
    } else {
        p += sprintf(p, "j\",\"%s\":\"", field);
        for (size_t i = 0; i < n; i++, p += unit_len)
            memcpy(p, unit, unit_len);
        p += sprintf(p, "\"}");
    }
    return body;
}

static const struct {
    const char *field;
    const char *unit; /* one character */
    size_t count;
    enum job_status status;
} lengths[] = {
    {"job_id", "a", 1, JOB_OK},
    {"job_id", "a", 128, JOB_OK},
    {"job_id", "a", 129, JOB_INVALID_JOB},
    {"job_id", "\xe2\x82\xac", 128, JOB_OK}, /* characters, not bytes */
    {"job_id", "\xf0\x9f\x98\x80", 128, JOB_OK},
    {"job_id", "\xf0\x9f\x98\x80", 129, JOB_INVALID_JOB},
    {"name", "b", 200, JOB_OK},
    {"name", "b", 201, JOB_INVALID_JOB},
    {"name", "\xc3\xa9", 200, JOB_OK},
    {"name", "\xc3\xa9", 201, JOB_INVALID_JOB},
    {"name", "\xf0\x9f\x98\x80", 200, JOB_OK},
};

START_TEST(test_lengths)
{
    char *body = job_with(lengths[_i].field, lengths[_i].unit, lengths[_i].count);
    struct job job;
    char detail[256];
    enum job_status status = job_decode(body, strlen(body), &job, detail, sizeof detail);

    ck_assert_msg(status == lengths[_i].status, "case %d: %s x%zu: status %d (%s)", _i,
                  lengths[_i].field, lengths[_i].count, status, detail);
    if (status != JOB_OK)
        ck_assert(strstr(detail, "characters, got") != NULL);
    free(body);
}
END_TEST

START_TEST(test_body_size_limit)
{
    /* A valid job padded with an ignored key to exactly the limit, then one
     * byte more. */
    size_t limit = JOB_BODY_MAX;
    char *body = malloc(limit + 2);
    struct job job;
    char detail[256];
    const char *head = "{\"job_id\":\"big\",\"pad\":\"";
    size_t head_len = strlen(head);

    memcpy(body, head, head_len);
    memset(body + head_len, 'p', limit - head_len - 2);
    memcpy(body + limit - 2, "\"}", 2);
    ck_assert_int_eq(job_decode(body, limit, &job, detail, sizeof detail), JOB_OK);
    ck_assert_str_eq(job.job_id, "big");

    memmove(body + head_len + 1, body + head_len, limit - head_len);
    ck_assert_int_eq(job_decode(body, limit + 1, &job, detail, sizeof detail), JOB_TOO_LARGE);
    ck_assert(strstr(detail, "65537 bytes") != NULL);
    /* Too large, but its job_id is still read for the error reply. */
    ck_assert_str_eq(job.job_id, "big");
    body[0] = '[';
    ck_assert_int_eq(job_decode(body, limit + 1, &job, detail, sizeof detail), JOB_TOO_LARGE);
    ck_assert_str_eq(job.job_id, "");
    free(body);
}
END_TEST

/* Too large, with a number jansson cannot hold before the job_id: the
 * job_id is still read for the error reply. */
START_TEST(test_too_large_with_huge_number)
{
    size_t len = JOB_BODY_MAX + 100;
    char *body = malloc(len + 1);
    struct job job;
    char detail[256];
    const char *head = "{\"big\":1e400,\"job_id\":\"huge\",\"pad\":\"";
    size_t head_len = strlen(head);

    memcpy(body, head, head_len);
    memset(body + head_len, 'p', len - head_len - 2);
    memcpy(body + len - 2, "\"}", 3);
    ck_assert_int_eq(job_decode(body, len, &job, detail, sizeof detail), JOB_TOO_LARGE);
    ck_assert_str_eq(job.job_id, "huge");
    free(body);
}
END_TEST

/* Too large, with a "\u0000" outside the job_id: the job_id is read as
 * it is for a job within the limit (found by tests/fuzz/fuzz_job.c). */
START_TEST(test_too_large_with_nul_elsewhere)
{
    size_t len = JOB_BODY_MAX + 1;
    char *body = malloc(len);
    struct job job;
    char detail[256];
    const char *head = "{\"job_id\":\"j1\",\"name\":\"a\\u0000b\"}";

    memset(body, ' ', len);
    memcpy(body, head, strlen(head));
    ck_assert_int_eq(job_decode(body, strlen(head), &job, detail, sizeof detail), JOB_INVALID_JOB);
    ck_assert_str_eq(job.job_id, "j1");
    ck_assert_int_eq(job_decode(body, len, &job, detail, sizeof detail), JOB_TOO_LARGE);
    ck_assert_str_eq(job.job_id, "j1");
    free(body);
}
END_TEST

START_TEST(test_detail_is_deterministic)
{
    const char *body = "{\"job_id\":\"j\",\"user_id\":\"x\"";
    struct job job;
    char first[256], second[256];

    job_decode(body, strlen(body), &job, first, sizeof first);
    job_decode(body, strlen(body), &job, second, sizeof second);
    ck_assert_str_eq(first, second);
}
END_TEST

/* A parse error says what and where, never quotes the body: jansson's
 * text ends "near '<the token it read>'", and that token may be a JWT
 * (the reply and the dead copy go where the job's sender is not the only
 * reader, and so do the logs). */
static const char *const quoting_bodies[] = {
    "{\"job_id\":\"j\",\"token\":\"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SIGNATURE_SIGNATURE\x01\"}",
    "{\"job_id\":\"j\",\"token\":\"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SIGNATURE_SIGNATURE\\q\"}",
    "{\"job_id\":\"j\",\"token\":\"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SIGNATURE_SIGNATURE",
    "{\"job_id\":\"j\",\"token\":eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SIGNATURE_SIGNATURE}",
    "{\"job_id\":\"j\",\"token\":\"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.SIGNATURE_SIGNATURE\" x}",
};

START_TEST(test_invalid_json_quotes_nothing)
{
    struct job job;
    char detail[512];

    ck_assert_int_eq(
        job_decode(quoting_bodies[_i], strlen(quoting_bodies[_i]), &job, detail, sizeof detail),
        JOB_INVALID_JSON);
    ck_assert_msg(strstr(detail, "not valid JSON") != NULL, "%d: %s", _i, detail);
    ck_assert_msg(strstr(detail, "(line 1, column ") != NULL, "%d: %s", _i, detail);
    ck_assert_msg(strstr(detail, "SIGNATURE") == NULL && strstr(detail, "eyJ") == NULL,
                  "%d: the body quoted in '%s'", _i, detail);
}
END_TEST

static const struct {
    enum job_status status;
    const char *code;
} codes[] = {
    {JOB_INVALID_JSON, "invalid_json"},
    {JOB_INVALID_JOB, "invalid_job"},
    {JOB_TOO_LARGE, "too_large"},
};

START_TEST(test_codes)
{
    ck_assert_str_eq(job_status_code(codes[_i].status), codes[_i].code);
}
END_TEST

static const struct {
    const char *text;
    size_t max;
    const char *problem; /* NULL: fine */
} texts[] = {
    {"ok", 128, NULL},
    {"", 128, "is empty"},
    {"abc", 2, "is too long"},
    {"\xc3\xa9\xc3\xa9", 2, NULL},
    {"\xff", 128, "is not valid UTF-8"},
    {"\xc0\xaf", 128, "is not valid UTF-8"},         /* overlong '/' */
    {"\xf4\x90\x80\x80", 128, "is not valid UTF-8"}, /* past U+10FFFF */
    {"a\rb", 128, "contains a control character"},
    {"\xc2\x9f", 128, "contains a control character"},
};

START_TEST(test_check_text)
{
    const char *problem = job_check_text(texts[_i].text, strlen(texts[_i].text), texts[_i].max);

    if (texts[_i].problem == NULL)
        ck_assert_ptr_null(problem);
    else
        ck_assert_str_eq(problem, texts[_i].problem);
}
END_TEST

Suite *job_suite(void)
{
    Suite *s = suite_create("job");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_table, 0, sizeof cases / sizeof cases[0]);
    tcase_add_loop_test(tc, test_lengths, 0, sizeof lengths / sizeof lengths[0]);
    tcase_add_test(tc, test_body_size_limit);
    tcase_add_test(tc, test_too_large_with_huge_number);
    tcase_add_test(tc, test_too_large_with_nul_elsewhere);
    tcase_add_test(tc, test_detail_is_deterministic);
    tcase_add_loop_test(tc, test_invalid_json_quotes_nothing, 0,
                        (int)(sizeof quoting_bodies / sizeof quoting_bodies[0]));
    tcase_add_loop_test(tc, test_codes, 0, sizeof codes / sizeof codes[0]);
    tcase_add_loop_test(tc, test_check_text, 0, sizeof texts / sizeof texts[0]);
    suite_add_tcase(s, tc);
    return s;
}
