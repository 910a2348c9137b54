/* fuzz_db_url.c - libpq connection strings and URIs masked for the log
 * (db_url.h).
 *
 * What libpq parses is written back so that libpq reads from it every
 * setting the same, and "***" for each secret that was given: no byte of
 * a secret is shown.  What libpq cannot parse shows its scheme alone, and
 * the error quotes nothing of the input but libpq's punctuation and the
 * names of settings that are not secret.  A buffer too small cuts the
 * text, never shows more. */
#include "db_url.h"
#include "fuzz.h"

#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

static bool is_secret(const PQconninfoOption *option)
{
    return strcmp(option->keyword, "password") == 0 ||
           strcmp(option->keyword, "sslpassword") == 0 ||
           (option->dispchar && strchr(option->dispchar, '*') != NULL);
}

static void check_same_meaning(const PQconninfoOption *before, const char *masked)
{
    char *parse_error = NULL;
    PQconninfoOption *after = PQconninfoParse(masked, &parse_error);

    fuzz_require(after != NULL, "the masked string '%s' does not parse: %s", masked,
                 parse_error ? parse_error : "out of memory");
    for (int i = 0; before[i].keyword; i++) {
        const char *was = before[i].val, *now = after[i].val;

        fuzz_require(strcmp(before[i].keyword, after[i].keyword) == 0, "keywords moved");
        if (was == NULL)
            fuzz_require(now == NULL, "%s appeared in '%s'", before[i].keyword, masked);
        else if (is_secret(&before[i]))
            fuzz_require(now && strcmp(now, "***") == 0, "%s shown in '%s'", before[i].keyword,
                         masked);
        else
            fuzz_require(now && strcmp(was, now) == 0, "%s '%s' became '%s'", before[i].keyword,
                         was, now ? now : "(none)");
    }
    PQconninfoFree(after);
}

/* A span the error may quote: "***", one of libpq's punctuation marks,
 * or the name of a setting that is not secret. */
static bool may_quote(const char *span, size_t len, const PQconninfoOption *known)
{
    if ((len == 3 && strncmp(span, "***", 3) == 0) || (len == 1 && strchr("=]:/", span[0]) != NULL))
        return true;
    for (const PQconninfoOption *option = known; option->keyword; option++)
        if (strlen(option->keyword) == len && strncmp(option->keyword, span, len) == 0)
            return !is_secret(option);
    return false;
}

static void check_error(const char *url, const char *masked, const char *err,
                        const PQconninfoOption *known)
{
    const char *scheme = strncmp(url, "postgresql://", 13) == 0 ? "postgresql://***"
                         : strncmp(url, "postgres://", 11) == 0 ? "postgres://***"
                                                                : "***";
    const char *open;

    fuzz_require(strcmp(masked, scheme) == 0, "unparsable shown as '%s'", masked);
    fuzz_require(err[0] != '\0', "no reason given");
    /* The quoted spans pair up; the one after the last pair, if any, is
     * what an unpaired quote left, and must be "***" too. */
    for (const char *p = err; (open = strchr(p, '"')) != NULL;) {
        const char *close = strchr(open + 1, '"');
        size_t len = close ? (size_t)(close - open - 1) : strlen(open + 1);

        fuzz_require(may_quote(open + 1, len, known) ||
                         (close == NULL && strncmp(open + 1, "***", 3) == 0),
                     "the error quotes '%.*s': %s", (int)len, open + 1, err);
        if (close == NULL)
            break;
        p = close + 1;
    }
}

static void check_cuts(const char *url, const char *whole, bool parsed)
{
    static const size_t sizes[] = {1, 2, 8, 16, 40};
    char small[40 + 1], err[40 + 1];

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t expect = strlen(whole) < sizes[i] - 1 ? strlen(whole) : sizes[i] - 1;

        memset(small, 'x', sizeof small);
        memset(err, 'x', sizeof err);
        fuzz_require(db_url_mask(url, small, sizes[i], err, sizes[i]) == parsed,
                     "parsed differently");
        fuzz_require(strlen(small) == expect && memcmp(small, whole, expect) == 0 &&
                         small[sizes[i]] == 'x' && err[sizes[i]] == 'x' && strlen(err) < sizes[i],
                     "cut to %zu bytes: '%s'", sizes[i], small);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in;
    const char *url;
    char *whole, err[1024], *parse_error = NULL;
    size_t whole_size;
    PQconninfoOption *options, *known;
    bool masked;

    fuzz_input_init(&in, data, size);
    url = fuzz_string(&in);
    /* Each value quoted and escaped at most doubles; the keywords add. */
    whole_size = strlen(url) * 4 + 4096;
    whole = malloc(whole_size);
    fuzz_require(whole != NULL, "out of memory");
    options = PQconninfoParse(url, &parse_error);
    PQfreemem(parse_error);

    masked = db_url_mask(url, whole, whole_size, err, sizeof err);
    fuzz_require(masked == (options != NULL), "db_url_mask says %d, libpq %d", masked,
                 options != NULL);
    if (options != NULL) {
        check_same_meaning(options, whole);
    } else {
        known = PQconninfoParse("", &parse_error);
        fuzz_require(known != NULL, "out of memory");
        check_error(url, whole, err, known);
        PQconninfoFree(known);
    }
    check_cuts(url, whole, masked);

    PQconninfoFree(options);
    free(whole);
    fuzz_input_free(&in);
    return 0;
}
