/* test_admin_rows.c - what greet-admin prints: the format chosen, JSON
 * lines (escaped, null, numbers), and tables (aligned, cleaned, cut). */
#include "rows.h"
#include "suites.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_format)
{
    static const struct {
        const char *name;
        bool terminal, ok;
        enum rows_format format;
    } cases[] = {
        {"auto", true, true, ROWS_TABLE},   {"auto", false, true, ROWS_JSON},
        {"table", false, true, ROWS_TABLE}, {"json", true, true, ROWS_JSON},
        {"JSON", true, false, ROWS_JSON},   {"", true, false, ROWS_JSON},
        {"csv", false, false, ROWS_JSON},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum rows_format format = ROWS_JSON;
        ck_assert_msg(rows_format_parse(cases[i].name, cases[i].terminal, &format) == cases[i].ok,
                      "%s", cases[i].name);
        if (cases[i].ok)
            ck_assert_int_eq(format, cases[i].format);
    }
}
END_TEST

static const struct rows_column columns[] = {{"job_id", false}, {"count", true}, {"note", false}};

/* Prints rows (3 values each, n of them) in format; returns the text. */
static char *render(enum rows_format format, const char *const (*values)[3], size_t n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    struct rows rows;

    ck_assert_ptr_nonnull(out);
    rows_init(&rows, format, out, columns, 3);
    for (size_t i = 0; i < n; i++)
        rows_add(&rows, values[i]);
    ck_assert(rows_finish(&rows));
    rows_free(&rows);
    fclose(out);
    return text;
}

START_TEST(test_json)
{
    const char *const values[][3] = {
        {"j-1", "3", "plain"},
        {NULL, "0", NULL},
        {"quote\" back\\ nl\n tab\t", "12", "\x01 bell"},
        {"bad \xff utf-8", "7", "caf\xc3\xa9"},
    };
    char *text = render(ROWS_JSON, values, 4);

    ck_assert_str_eq(text, "{\"job_id\":\"j-1\",\"count\":3,\"note\":\"plain\"}\n"
                           "{\"job_id\":null,\"count\":0,\"note\":null}\n"
                           "{\"job_id\":\"quote\\\" back\\\\ nl\\n tab\\t\",\"count\":12,"
                           "\"note\":\"\\u0001 bell\"}\n"
                           "{\"job_id\":\"bad \xef\xbf\xbd utf-8\",\"count\":7,"
                           "\"note\":\"caf\xc3\xa9\"}\n");
    free(text);
}
END_TEST

START_TEST(test_table)
{
    const char *const values[][3] = {
        {"j-1", "3", "plain"},
        {"job-longer", "12", NULL},
        {"caf\xc3\xa9", "0", "esc\x1b[31mred"},
    };
    char *text = render(ROWS_TABLE, values, 3);

    /* Columns as wide as their widest cell (in characters), two spaces
     * apart; a control character or bad byte shows as '?'. */
    ck_assert_str_eq(text, "JOB_ID      COUNT  NOTE\n"
                           "j-1         3      plain\n"
                           "job-longer  12     -\n"
                           "caf\xc3\xa9        0      esc?[31mred\n");
    free(text);
}
END_TEST

START_TEST(test_table_cut)
{
    char long_value[200], expect_cell[ROWS_CELL_MAX + 1];
    const char *values[1][3] = {{long_value, "1", "x"}};
    char *text, *newline;

    memset(long_value, 'a', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    memset(expect_cell, 'a', ROWS_CELL_MAX - 3);
    memcpy(expect_cell + ROWS_CELL_MAX - 3, "...", 4);
    text = render(ROWS_TABLE, (const char *const(*)[3])values, 1);
    newline = strchr(text, '\n');
    ck_assert_ptr_nonnull(newline);
    ck_assert_msg(strncmp(newline + 1, expect_cell, ROWS_CELL_MAX) == 0, "%s", text);
    ck_assert(newline[1 + ROWS_CELL_MAX] == ' ');
    free(text);

    /* Exactly ROWS_CELL_MAX characters: not cut. */
    long_value[ROWS_CELL_MAX] = '\0';
    text = render(ROWS_TABLE, (const char *const(*)[3])values, 1);
    ck_assert_ptr_null(strstr(text, "..."));
    free(text);
}
END_TEST

START_TEST(test_table_empty)
{
    char *text = render(ROWS_TABLE, NULL, 0);

    /* No rows, no heading: the summary on stderr says there were none. */
    ck_assert_str_eq(text, "");
    free(text);
}
END_TEST

Suite *admin_rows_suite(void)
{
    Suite *s = suite_create("admin_rows");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_format);
    tcase_add_test(tc, test_json);
    tcase_add_test(tc, test_table);
    tcase_add_test(tc, test_table_cut);
    tcase_add_test(tc, test_table_empty);
    suite_add_tcase(s, tc);
    return s;
}
