/* greet.h - the contract's greeting rule (pure: values in, text out).
 *
 *   name     = job name, else display_name, else "World"
 *   template = (language, formality), else (language, casual),
 *              else (en, casual), else "Hello, {name}!"
 *   message  = template with each {name} replaced once, literally. */
#ifndef GREET_GREET_H
#define GREET_GREET_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

/* A user_preferences row; NULL prefs means "no row": the defaults. */
struct greet_prefs {
    const char *display_name; /* NULL or "" when the user has none */
    const char *language;
    const char *formality;
};

/* A greeting_templates row. */
struct greet_template {
    const char *language;
    const char *formality;
    const char *text;
};

extern const struct greet_template greet_builtin_template;

/* The template the rule picks among templates[0..count). */
const struct greet_template *greet_pick_template(const struct greet_template *templates,
                                                 size_t count, const char *language,
                                                 const char *formality);

/* The name the rule picks; job_name NULL when the job has none. */
const char *greet_pick_name(const char *job_name, const struct greet_prefs *prefs);

/* Appends template_text with every "{name}" replaced by name. */
bool greet_render(struct buf *out, const char *template_text, const char *name);

/* The whole rule: appends the message to out and returns the language of
 * the template used (the language the message is written in). */
const char *greet_message(struct buf *out, const char *job_name, const struct greet_prefs *prefs,
                          const struct greet_template *templates, size_t count);

#endif
