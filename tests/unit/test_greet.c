/* test_greet.c - the greeting rule and each of its fallbacks. */
#include "greet.h"
#include "suites.h"

#include <string.h>

static const struct greet_template templates[] = {
    {"en", "casual", "Hello, {name}!"},
    {"en", "formal", "Good day, {name}."},
    {"fr", "casual", "Salut, {name} !"},
    {"fr", "formal", "Bonjour, {name}."},
    {"de", "formal", "Guten Tag, {name}."}, /* no German casual on purpose */
    {"ja", "casual",
     "{name}"
     "\xe3\x81\x95\xe3\x82\x93\xe3\x80\x81\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3\x81"
     "\xaf"},
    {"xx", "casual", "{name} {name} {name}"},
    {"yy", "casual", "no placeholder"},
    {"zz", "casual", "{nam} {name} {{name}} {name"},
};
#define N_TEMPLATES (sizeof templates / sizeof templates[0])

struct greet_case {
    bool has_prefs;
    struct greet_prefs prefs;
    const char *job_name; /* NULL: none */
    const struct greet_template *set;
    size_t set_size;
    const char *message;
    const char *language;
};

/* Only (en, formal): the (en, casual) fallback is missing too. */
static const struct greet_template formal_only[] = {{"en", "formal", "Good day, {name}."}};

static const struct greet_case cases[] = {
    /* 1. no prefs: defaults (en, casual), name World. */
    {false, {0}, NULL, templates, N_TEMPLATES, "Hello, World!", "en"},
    /* 2. name: job name beats display_name beats World. */
    {true, {"Ada", "en", "casual"}, NULL, templates, N_TEMPLATES, "Hello, Ada!", "en"},
    {true, {"Ada", "en", "casual"}, "Bob", templates, N_TEMPLATES, "Hello, Bob!", "en"},
    {true, {NULL, "en", "casual"}, NULL, templates, N_TEMPLATES, "Hello, World!", "en"},
    {true, {"", "en", "casual"}, NULL, templates, N_TEMPLATES, "Hello, World!", "en"},
    {false, {0}, "Bob", templates, N_TEMPLATES, "Hello, Bob!", "en"},
    /* 3. template: exact, then (language, casual), then (en, casual), then built in. */
    {true, {"Ada", "fr", "formal"}, NULL, templates, N_TEMPLATES, "Bonjour, Ada.", "fr"},
    {true, {"Ada", "en", "formal"}, NULL, templates, N_TEMPLATES, "Good day, Ada.", "en"},
    {true,
     {"Ada", "ja", "formal"},
     NULL,
     templates,
     N_TEMPLATES,
     "Ada\xe3\x81\x95\xe3\x82\x93\xe3\x80\x81\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1\xe3"
     "\x81\xaf",
     "ja"},
    {true, {"Ada", "de", "casual"}, NULL, templates, N_TEMPLATES, "Hello, Ada!", "en"},
    {true, {"Ada", "pt", "formal"}, NULL, templates, N_TEMPLATES, "Hello, Ada!", "en"},
    {true, {"Ada", "pt", "formal"}, NULL, formal_only, 1, "Hello, Ada!", "en"},
    {true, {"Ada", "pt", "casual"}, NULL, NULL, 0, "Hello, Ada!", "en"},
    {false, {0}, NULL, NULL, 0, "Hello, World!", "en"},
    /* 4. every {name}, once, literally. */
    {true, {"Al", "xx", "casual"}, NULL, templates, N_TEMPLATES, "Al Al Al", "xx"},
    {true, {"Al", "yy", "casual"}, NULL, templates, N_TEMPLATES, "no placeholder", "yy"},
    {true, {"Al", "zz", "casual"}, NULL, templates, N_TEMPLATES, "{nam} Al {Al} {name", "zz"},
    {true, {"Al", "xx", "casual"}, "{name}", templates, N_TEMPLATES, "{name} {name} {name}", "xx"},
    {false, {0}, "{name}{name}", templates, N_TEMPLATES, "Hello, {name}{name}!", "en"},
    {false,
     {0},
     "Zo\xc3\xab \xf0\x9f\x98\x80",
     templates,
     N_TEMPLATES,
     "Hello, Zo\xc3\xab \xf0\x9f\x98\x80!",
     "en"},
    {true,
     {"\xe5\xa4\xaa\xe9\x83\x8e", "ja", "casual"},
     NULL,
     templates,
     N_TEMPLATES,
     "\xe5\xa4\xaa\xe9\x83\x8e\xe3\x81\x95\xe3\x82\x93\xe3\x80\x81\xe3\x81\x93\xe3\x82\x93\xe3\x81"
     "\xab\xe3\x81\xa1"
     "\xe3\x81\xaf",
     "ja"},
};

START_TEST(test_rule)
{
    const struct greet_case *c = &cases[_i];
    struct buf out = {0};
    const char *language;

    language =
        greet_message(&out, c->job_name, c->has_prefs ? &c->prefs : NULL, c->set, c->set_size);
    ck_assert_ptr_nonnull(language);
    ck_assert_msg(strcmp(out.data, c->message) == 0, "case %d: '%s', want '%s'", _i, out.data,
                  c->message);
    ck_assert_str_eq(language, c->language);
    buf_free(&out);
}
END_TEST

START_TEST(test_render_appends)
{
    struct buf out = {0};

    ck_assert(buf_append_str(&out, ">"));
    ck_assert(greet_render(&out, "{name}", "x"));
    ck_assert_str_eq(out.data, ">x");
    buf_free(&out);
}
END_TEST

Suite *greet_suite(void)
{
    Suite *s = suite_create("greet");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_rule, 0, sizeof cases / sizeof cases[0]);
    tcase_add_test(tc, test_render_appends);
    suite_add_tcase(s, tc);
    return s;
}
