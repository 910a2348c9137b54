/* fuzz_mq_url.c - broker URLs masked for the log (mq_url.h).
 *
 * A URL librabbitmq reads is written back so that librabbitmq reads from
 * it the same user, host, port, vhost and TLS choice, and "***" as the
 * password: every byte shown belongs to a part that is not the password.
 * One it cannot read shows its scheme alone, and the error quotes only
 * that.  A buffer too small cuts the text, never shows more.  A list is
 * split at ',' and ';' into trimmed URLs, each masked alone. */
#include "fuzz.h"
#include "mq_url.h"

#include <amqp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A masked list: each entry cut at 512 bytes, as mq_url_list_mask() does. */
#define LIST_TEXT_MAX (MQ_URL_LIST_MAX * 600)

static const char *scheme_alone(const char *url)
{
    if (strncmp(url, "amqps://", 8) == 0)
        return "amqps://***";
    if (strncmp(url, "amqp://", 7) == 0)
        return "amqp://***";
    return "***";
}

/* The masked form, read back, means what the URL meant. */
static void check_same_meaning(const char *url, const char *masked)
{
    char *before_text = strdup(url), *after_text = strdup(masked);
    struct amqp_connection_info before, after;

    fuzz_require(before_text && after_text, "out of memory");
    fuzz_require(amqp_parse_url(before_text, &before) == AMQP_STATUS_OK, "parsed, then not");
    fuzz_require(amqp_parse_url(after_text, &after) == AMQP_STATUS_OK,
                 "the masked URL '%s' does not parse", masked);
    fuzz_require(strcmp(after.password, "***") == 0, "password '%s' shown in '%s'", after.password,
                 masked);
    fuzz_require(strcmp(before.user, after.user) == 0, "user '%s' became '%s'", before.user,
                 after.user);
    fuzz_require(strcmp(before.host, after.host) == 0, "host '%s' became '%s'", before.host,
                 after.host);
    fuzz_require(strcmp(before.vhost, after.vhost) == 0, "vhost '%s' became '%s'", before.vhost,
                 after.vhost);
    fuzz_require(before.port == after.port && before.ssl == after.ssl, "port or TLS changed");
    free(before_text);
    free(after_text);
}

/* Cut to each small size, the text is a prefix of the whole one. */
static void check_cuts(const char *url, const char *whole, bool parsed)
{
    static const size_t sizes[] = {1, 2, 8, 16, 40};
    char small[40 + 1], untouched = 'x';

    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t expect = strlen(whole) < sizes[i] - 1 ? strlen(whole) : sizes[i] - 1;

        memset(small, 'x', sizeof small);
        fuzz_require(mq_url_mask(url, small, sizes[i], NULL, 0) == parsed, "parsed differently");
        fuzz_require(strlen(small) == expect && memcmp(small, whole, expect) == 0 &&
                         small[sizes[i]] == 'x',
                     "cut to %zu bytes: '%s'", sizes[i], small);
    }
    mq_url_mask(url, &untouched, 0, NULL, 0);
    fuzz_require(untouched == 'x', "wrote into a buffer of 0 bytes");
}

static void check_list(const char *list)
{
    struct mq_url_list urls;
    char err[512], *masked = malloc(LIST_TEXT_MAX), *expected;
    size_t separators = 0, len = 0;
    bool ok = mq_url_list_parse(list, &urls, err, sizeof err);

    expected = malloc(LIST_TEXT_MAX);
    fuzz_require(masked && expected, "out of memory");
    fuzz_require(ok || err[0] != '\0', "refused without a reason");
    fuzz_require(mq_url_list_mask(list, masked, LIST_TEXT_MAX, err, sizeof err) == ok,
                 "mask and parse disagree");
    for (const char *c = list; *c; c++)
        separators += *c == ',' || *c == ';';
    if (!ok) {
        fuzz_require(strcmp(masked, "***") == 0, "refused list shown as '%s'", masked);
        goto done;
    }
    fuzz_require(urls.n == separators + 1 && urls.n <= MQ_URL_LIST_MAX, "%u entries, %zu commas",
                 urls.n, separators);
    for (unsigned i = 0; i < urls.n; i++) {
        const char *url = urls.urls[i];
        size_t n = strlen(url);
        char one[512];

        fuzz_require(n > 0 && strpbrk(url, ",;") == NULL && !strchr(" \t\r\n", url[0]) &&
                         !strchr(" \t\r\n", url[n - 1]),
                     "entry %u is '%s'", i, url);
        fuzz_require(mq_url_mask(url, one, sizeof one, NULL, 0), "entry %u does not parse", i);
        len += (size_t)snprintf(expected + len, 600, "%s%s", i ? "," : "", one);
    }
    fuzz_require(strcmp(masked, expected) == 0, "list shown as '%s', its entries as '%s'", masked,
                 expected);
done:
    free(masked);
    free(expected);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in;
    const char *url;
    char *whole, err[512];
    struct amqp_connection_info info;
    char *copy;
    bool parsed, masked;
    size_t whole_size;

    fuzz_input_init(&in, data, size);
    url = fuzz_string(&in);
    whole_size = strlen(url) * 3 + 64; /* each byte %XX at most, and the defaults */
    whole = malloc(whole_size);
    copy = strdup(url);
    fuzz_require(whole && copy, "out of memory");
    parsed = amqp_parse_url(copy, &info) == AMQP_STATUS_OK;
    free(copy);

    masked = mq_url_mask(url, whole, whole_size, err, sizeof err);
    fuzz_require(masked == parsed, "mq_url_mask says %d, librabbitmq %d", masked, parsed);
    if (parsed) {
        check_same_meaning(url, whole);
    } else {
        char expected[160];
        snprintf(expected, sizeof expected, "librabbitmq cannot parse '%s': ", scheme_alone(url));
        fuzz_require(strcmp(whole, scheme_alone(url)) == 0, "unparsable shown as '%s'", whole);
        fuzz_require(strncmp(err, expected, strlen(expected)) == 0, "error '%s'", err);
    }
    check_cuts(url, whole, parsed);
    check_list(url);

    free(whole);
    fuzz_input_free(&in);
    return 0;
}
