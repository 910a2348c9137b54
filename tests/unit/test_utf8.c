/* test_utf8.c - decoding one code point, valid and invalid sequences. */
#include "suites.h"
#include "utf8.h"

#include <string.h>

static const struct {
    const char *bytes;
    unsigned length; /* 0: invalid */
    unsigned long code_point;
} sequences[] = {
    {"A", 1, 0x41},
    {"\x7f", 1, 0x7f},
    {"\xc2\x80", 2, 0x80},
    {"\xc3\xa9", 2, 0xe9},
    {"\xdf\xbf", 2, 0x7ff},
    {"\xe0\xa0\x80", 3, 0x800},
    {"\xe2\x82\xac", 3, 0x20ac},
    {"\xef\xbf\xbd", 3, 0xfffd},
    {"\xf0\x90\x80\x80", 4, 0x10000},
    {"\xf4\x8f\xbf\xbf", 4, 0x10ffff},
    /* invalid */
    {"\x80", 0, 0},             /* lone continuation byte */
    {"\xc0\xaf", 0, 0},         /* overlong '/' */
    {"\xc1\xbf", 0, 0},         /* overlong */
    {"\xe0\x80\xaf", 0, 0},     /* overlong, three bytes */
    {"\xed\xa0\x80", 0, 0},     /* surrogate U+D800 */
    {"\xf4\x90\x80\x80", 0, 0}, /* past U+10FFFF */
    {"\xf5\x80\x80\x80", 0, 0},
    {"\xc3", 0, 0}, /* cut short */
    {"\xe2\x82", 0, 0},
    {"\xc3\x28", 0, 0}, /* bad continuation */
    {"\xff", 0, 0},
};

START_TEST(test_next)
{
    const unsigned char *s = (const unsigned char *)sequences[_i].bytes;
    unsigned long cp = 0;
    unsigned n = utf8_next(s, strlen(sequences[_i].bytes), &cp);

    ck_assert_msg(n == sequences[_i].length, "case %d: length %u", _i, n);
    if (n > 0)
        ck_assert_uint_eq(cp, sequences[_i].code_point);
}
END_TEST

static const struct {
    unsigned long code_point;
    bool control;
} controls[] = {
    {0x00, true}, {0x09, true}, {0x1f, true},  {0x20, false},   {0x7e, false},   {0x7f, true},
    {0x80, true}, {0x9f, true}, {0xa0, false}, {0x2028, false}, {0xfeff, false},
};

START_TEST(test_control)
{
    ck_assert_int_eq(utf8_is_control(controls[_i].code_point), controls[_i].control);
}
END_TEST

Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_next, 0, sizeof sequences / sizeof sequences[0]);
    tcase_add_loop_test(tc, test_control, 0, sizeof controls / sizeof controls[0]);
    suite_add_tcase(s, tc);
    return s;
}
