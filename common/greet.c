/* greet.c - the greeting rule; see greet.h. */
#include "greet.h"

#include <string.h>

static const char PLACEHOLDER[] = "{name}";
#define PLACEHOLDER_LEN (sizeof PLACEHOLDER - 1)

const struct greet_template greet_builtin_template = {"en", "casual", "Hello, {name}!"};

static const struct greet_template *find(const struct greet_template *templates, size_t count,
                                         const char *language, const char *formality)
{
    for (size_t i = 0; i < count; i++)
        if (strcmp(templates[i].language, language) == 0 &&
            strcmp(templates[i].formality, formality) == 0)
            return &templates[i];
    return NULL;
}

const struct greet_template *greet_pick_template(const struct greet_template *templates,
                                                 size_t count, const char *language,
                                                 const char *formality)
{
    const struct greet_template *found;

    if ((found = find(templates, count, language, formality)) != NULL)
        return found;
    if ((found = find(templates, count, language, "casual")) != NULL)
        return found;
    if ((found = find(templates, count, "en", "casual")) != NULL)
        return found;
    return &greet_builtin_template;
}

const char *greet_pick_name(const char *job_name, const struct greet_prefs *prefs)
{
    if (job_name != NULL)
        return job_name;
    if (prefs != NULL && prefs->display_name != NULL && prefs->display_name[0] != '\0')
        return prefs->display_name;
    return "World";
}

bool greet_render(struct buf *out, const char *template_text, const char *name)
{
    size_t name_len = strlen(name);
    const char *rest = template_text;
    const char *hit;

    /* The name is appended, never scanned again: a "{name}" inside it
     * stays as it is. */
    while ((hit = strstr(rest, PLACEHOLDER)) != NULL) {
        if (!buf_append(out, rest, (size_t)(hit - rest)) || !buf_append(out, name, name_len))
            return false;
        rest = hit + PLACEHOLDER_LEN;
    }
    return buf_append_str(out, rest);
}

const char *greet_message(struct buf *out, const char *job_name, const struct greet_prefs *prefs,
                          const struct greet_template *templates, size_t count)
{
    const char *language = prefs ? prefs->language : "en";
    const char *formality = prefs ? prefs->formality : "casual";
    const struct greet_template *chosen =
        greet_pick_template(templates, count, language, formality);

    if (!greet_render(out, chosen->text, greet_pick_name(job_name, prefs)))
        return NULL;
    return chosen->language;
}
