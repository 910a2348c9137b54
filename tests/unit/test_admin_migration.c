/* test_admin_migration.c - greet-admin migrate's decisions: which files
 * and in which order, the plan against what was applied, the
 * no-transaction marker, psql meta-commands, and cutting SQL into
 * statements. */
#include "migration.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_sql_names)
{
    static const struct {
        const char *name;
        bool sql;
    } cases[] = {
        {"001_schema.sql", true},  {"a.sql", true},
        {".sql", false},           {".hidden.sql", false},
        {"001_schema.SQL", false}, {"001_schema.sql~", false},
        {"notes.txt", false},      {"sql", false},
        {"sample", false},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        ck_assert_msg(migration_is_sql_name(cases[i].name) == cases[i].sql, "%s", cases[i].name);
}
END_TEST

START_TEST(test_order)
{
    const char *names[] = {"010_more.sql",   "sample/users.sql",       "002_worker_role.sql",
                           "001_schema.sql", "003_seed_templates.sql", "01_early.sql"};
    const char *expect[] = {"001_schema.sql", "002_worker_role.sql", "003_seed_templates.sql",
                            "010_more.sql",   "01_early.sql",        "sample/users.sql"};

    qsort(names, 6, sizeof names[0], migration_compare);
    for (size_t i = 0; i < 6; i++)
        ck_assert_str_eq(names[i], expect[i]);
}
END_TEST

/* A plan case: the files found, what was recorded, the actions expected
 * ("a" apply, "s" skip, one letter per file), or the start of the error. */
struct plan_case {
    const char *name;
    struct migration_file files[4];
    struct migration_file applied[4];
    const char *expect_actions; /* NULL: refused */
    const char *expect_error;
};

static const struct plan_case plan_cases[] = {
    {"an empty database: everything",
     {{"001.sql", "aa"}, {"002.sql", "bb"}, {"003.sql", "cc"}},
     {{NULL, NULL}},
     "aaa",
     NULL},
    {"everything applied: nothing",
     {{"001.sql", "aa"}, {"002.sql", "bb"}},
     {{"002.sql", "bb"}, {"001.sql", "aa"}},
     "ss",
     NULL},
    {"a new file after the applied ones",
     {{"001.sql", "aa"}, {"002.sql", "bb"}, {"003.sql", "cc"}},
     {{"001.sql", "aa"}, {"002.sql", "bb"}},
     "ssa",
     NULL},
    {"a gap is filled",
     {{"001.sql", "aa"}, {"002.sql", "bb"}, {"003.sql", "cc"}},
     {{"001.sql", "aa"}, {"003.sql", "cc"}},
     "sas",
     NULL},
    {"a recorded file that is gone is ignored",
     {{"001.sql", "aa"}},
     {{"001.sql", "aa"}, {"000_old.sql", "zz"}},
     "s",
     NULL},
    {"sample files are files like the others",
     {{"001.sql", "aa"}, {"sample/users.sql", "uu"}},
     {{"001.sql", "aa"}},
     "sa",
     NULL},
    {"a changed file is refused",
     {{"001.sql", "aa"}, {"002.sql", "b2"}, {"003.sql", "cc"}},
     {{"001.sql", "aa"}, {"002.sql", "bb"}},
     NULL,
     "002.sql changed since it was applied (checksum then bb..., now b2...)"},
    {"the first changed file is named",
     {{"001.sql", "a2"}, {"002.sql", "b2"}},
     {{"001.sql", "aa"}, {"002.sql", "bb"}},
     NULL,
     "001.sql changed since it was applied (checksum then aa..., now a2...), and other applied "
     "files changed too"},
};

START_TEST(test_plan)
{
    const struct plan_case *c = &plan_cases[_i];
    size_t n = 0, n_applied = 0;
    enum migration_action actions[4];
    char err[512] = "", got[5] = "";
    bool ok;

    while (n < 4 && c->files[n].name)
        n++;
    while (n_applied < 4 && c->applied[n_applied].name)
        n_applied++;
    ok = migration_plan(c->files, n, c->applied, n_applied, actions, err, sizeof err);
    if (c->expect_actions == NULL) {
        ck_assert_msg(!ok, "%s: accepted", c->name);
        ck_assert_msg(strncmp(err, c->expect_error, strlen(c->expect_error)) == 0, "%s: %s",
                      c->name, err);
        return;
    }
    ck_assert_msg(ok, "%s: %s", c->name, err);
    for (size_t i = 0; i < n; i++)
        got[i] = actions[i] == MIGRATION_APPLY ? 'a' : 's';
    ck_assert_msg(strcmp(got, c->expect_actions) == 0, "%s: %s", c->name, got);
}
END_TEST

struct transaction_case {
    const char *text;
    bool in_transaction;
};

static const struct transaction_case transaction_cases[] = {
    {"CREATE TABLE t (x int);", true},
    {"-- a comment\nCREATE TABLE t (x int);", true},
    {"", true},
    {"-- greet:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (x);", false},
    {"-- Build the index without locking writes.\n-- greet:no-transaction\n\nCREATE INDEX "
     "CONCURRENTLY i ON t (x);",
     false},
    {"\n\n-- greet:no-transaction  \r\nVACUUM t;", false},
    /* Only in the leading comments. */
    {"SELECT 1;\n-- greet:no-transaction\n", true},
    {"SELECT '-- greet:no-transaction';", true},
    /* Only the marker itself. */
    {"-- greet:no-transactions\nSELECT 1;", true},
    {"--greet:no-transaction\nSELECT 1;", true},
};

START_TEST(test_transaction)
{
    const struct transaction_case *c = &transaction_cases[_i];

    ck_assert_msg(migration_in_transaction(c->text, strlen(c->text)) == c->in_transaction, "%s",
                  c->text);
}
END_TEST

struct psql_case {
    const char *text;
    unsigned line;
};

static const struct psql_case psql_cases[] = {
    {"SELECT 1;", 0},
    {"\\set ON_ERROR_STOP 1\nSELECT 1;", 1},
    {"SELECT 1;\n\n\\i other.sql\n", 3},
    {"SELECT 1 \\gset\n", 1},
    /* Backslashes inside quotes, identifiers, dollar quotes, comments. */
    {"SELECT 'a\\b';", 0},
    {"SELECT E'it\\'s \\\\ fine';", 0},
    {"SELECT \"odd\\name\" FROM t;", 0},
    {"DO $$ BEGIN RAISE NOTICE '\\'; END $$;", 0},
    {"DO $body$\n\\not psql\n$body$;", 0},
    {"-- a \\comment\nSELECT 1;", 0},
    {"/* a \\comment /* nested \\ */ still \\ */ SELECT 1;", 0},
    {"/* a */ SELECT 1;\n\\q", 2},
    /* A quote closed by '' stays open: the backslash is inside. */
    {"SELECT 'it''s \\ here';", 0},
    {"SELECT 'it''s';\n\\q", 2},
};

START_TEST(test_psql)
{
    const struct psql_case *c = &psql_cases[_i];

    ck_assert_uint_eq(migration_psql_line(c->text, strlen(c->text)), c->line);
}
END_TEST

struct split_case {
    const char *text;
    const char *expect[4]; /* the statements, in order */
};

static const struct split_case split_cases[] = {
    {"", {NULL}},
    {"  \n-- only a comment\n/* and another */\n", {NULL}},
    {"SELECT 1;", {"SELECT 1;", NULL}},
    {"SELECT 1", {"SELECT 1", NULL}},
    {"SELECT 1;SELECT 2;\n\n  SELECT 3 ;  ", {"SELECT 1;", "SELECT 2;", "SELECT 3 ;", NULL}},
    {";;SELECT 1;;", {"SELECT 1;", NULL}},
    {"-- greet:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (x);\nVACUUM t;\n",
     {"CREATE INDEX CONCURRENTLY i ON t (x);", "VACUUM t;", NULL}},
    {"SELECT ';';", {"SELECT ';';", NULL}},
    {"SELECT 'a'';b';", {"SELECT 'a'';b';", NULL}},
    {"SELECT E'a\\';b';", {"SELECT E'a\\';b';", NULL}},
    {"SELECT \"a;b\" FROM t;", {"SELECT \"a;b\" FROM t;", NULL}},
    {"SELECT 1 -- ; not an end\n+ 1;", {"SELECT 1 -- ; not an end\n+ 1;", NULL}},
    {"SELECT /* ; /* ; */ ; */ 1;", {"SELECT /* ; /* ; */ ; */ 1;", NULL}},
    {"DO $$ BEGIN PERFORM 1; END $$; SELECT 2;",
     {"DO $$ BEGIN PERFORM 1; END $$;", "SELECT 2;", NULL}},
    {"DO $f$ BEGIN PERFORM '$$;'; END $f$;", {"DO $f$ BEGIN PERFORM '$$;'; END $f$;", NULL}},
    /* $1 is a parameter and a$b$ an identifier, not dollar quotes. */
    {"PREPARE p AS SELECT $1; SELECT a$b$ FROM t;",
     {"PREPARE p AS SELECT $1;", "SELECT a$b$ FROM t;", NULL}},
    {"SELECT 'unterminated; still in it", {"SELECT 'unterminated; still in it", NULL}},
};

START_TEST(test_split)
{
    const struct split_case *c = &split_cases[_i];
    size_t len = strlen(c->text), pos = 0, start, end, n = 0;

    while (migration_next_statement(c->text, len, &pos, &start, &end)) {
        ck_assert_msg(n < 4 && c->expect[n] != NULL, "%s: more statements than expected", c->text);
        ck_assert_msg(end - start == strlen(c->expect[n]) &&
                          memcmp(c->text + start, c->expect[n], end - start) == 0,
                      "%s: statement %zu is '%.*s'", c->text, n, (int)(end - start),
                      c->text + start);
        n++;
    }
    ck_assert_msg(c->expect[n] == NULL, "%s: only %zu statements", c->text, n);
    ck_assert_uint_eq(pos, len);
}
END_TEST

Suite *admin_migration_suite(void)
{
    Suite *s = suite_create("admin_migration");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_sql_names);
    tcase_add_test(tc, test_order);
    tcase_add_loop_test(tc, test_plan, 0, sizeof plan_cases / sizeof plan_cases[0]);
    tcase_add_loop_test(tc, test_transaction, 0,
                        sizeof transaction_cases / sizeof transaction_cases[0]);
    tcase_add_loop_test(tc, test_psql, 0, sizeof psql_cases / sizeof psql_cases[0]);
    tcase_add_loop_test(tc, test_split, 0, sizeof split_cases / sizeof split_cases[0]);
    suite_add_tcase(s, tc);
    return s;
}
