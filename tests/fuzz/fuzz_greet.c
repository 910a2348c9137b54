/* fuzz_greet.c - the greeting rule on any names, preferences and
 * templates (greet.h).
 *
 * The template picked is the first of the best rank the rule allows
 * (language and formality, else the language's casual, else en casual,
 * else the built-in one), none better exists; the name is the job's, else
 * a non-empty display name, else "World"; each "{name}" is replaced once,
 * left to right, and a "{name}" inside the name is left alone; the
 * message is appended to what the buffer held. */
#include "fuzz.h"
#include "greet.h"

#include <stdlib.h>
#include <string.h>

#define MAX_TEMPLATES 8

/* 0: language and formality, 1: the language's casual, 2: en casual, 3: none. */
static int rank(const struct greet_template *t, const char *language, const char *formality)
{
    if (strcmp(t->language, language) == 0 && strcmp(t->formality, formality) == 0)
        return 0;
    if (strcmp(t->language, language) == 0 && strcmp(t->formality, "casual") == 0)
        return 1;
    if (strcmp(t->language, "en") == 0 && strcmp(t->formality, "casual") == 0)
        return 2;
    return 3;
}

static void check_pick(const struct greet_template *templates, size_t count,
                       const struct greet_template *chosen, const char *language,
                       const char *formality)
{
    int best = 3;
    size_t first = count;

    for (size_t i = 0; i < count; i++) {
        int r = rank(&templates[i], language, formality);
        if (r < best) {
            best = r;
            first = i;
        }
    }
    if (first == count)
        fuzz_require(chosen == &greet_builtin_template, "picked a template no rule allows");
    else
        fuzz_require(chosen == &templates[first], "picked template %td, the rule says %zu",
                     chosen - templates, first);
}

/* The rendering, character by character rather than by strstr(). */
static void render(struct buf *out, const char *text, const char *name)
{
    for (size_t i = 0; text[i] != '\0';) {
        if (strncmp(text + i, "{name}", 6) == 0) {
            fuzz_require(buf_append_str(out, name), "out of memory");
            i += 6;
        } else {
            fuzz_require(buf_append(out, text + i, 1), "out of memory");
            i++;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in;
    struct greet_template templates[MAX_TEMPLATES];
    struct greet_prefs prefs;
    const struct greet_prefs *given;
    const struct greet_template *chosen;
    struct buf out = {0}, expected = {0};
    const char *job_name, *prefix, *name, *language, *formality;
    unsigned char flags;
    size_t count;

    fuzz_input_init(&in, data, size);
    flags = fuzz_byte(&in);
    count = (size_t)(flags >> 2) % (MAX_TEMPLATES + 1);
    prefix = fuzz_string(&in);
    job_name = (flags & 1) ? fuzz_string(&in) : NULL; /* NULL: the job has no name */
    prefs.display_name = fuzz_string(&in);
    prefs.language = fuzz_string(&in);
    prefs.formality = fuzz_string(&in);
    given = (flags & 2) ? &prefs : NULL; /* NULL: no preferences row */
    for (size_t i = 0; i < count; i++) {
        templates[i].language = fuzz_string(&in);
        templates[i].formality = fuzz_string(&in);
        templates[i].text = fuzz_string(&in);
    }
    language = given ? given->language : "en";
    formality = given ? given->formality : "casual";

    chosen = greet_pick_template(templates, count, language, formality);
    check_pick(templates, count, chosen, language, formality);

    name = job_name                                  ? job_name
           : given && given->display_name[0] != '\0' ? given->display_name
                                                     : "World";
    fuzz_require(strcmp(greet_pick_name(job_name, given), name) == 0,
                 "name '%s', the rule says '%s'", greet_pick_name(job_name, given), name);

    fuzz_require(buf_append_str(&out, prefix) && buf_append_str(&expected, prefix),
                 "out of memory");
    render(&expected, chosen->text, name);
    fuzz_require(greet_message(&out, job_name, given, templates, count) == chosen->language,
                 "greet_message's language is not its template's");
    fuzz_require(out.len == expected.len && memcmp(out.data, expected.data, out.len) == 0,
                 "message '%s', expected '%s'", out.data, expected.data);

    buf_free(&out);
    buf_free(&expected);
    fuzz_input_free(&in);
    return 0;
}
