/* mq_url.c - broker URLs read by librabbitmq; see mq_url.h.
 *
 * The masked URL is rebuilt from what amqp_parse_url() returned, never cut
 * out of the input: whatever the input's quirks (a raw '@' or '/' in the
 * password, a stray percent sign), the password is not among the parts
 * written back, so it cannot reach the log. */
#include "mq_url.h"

#include "buf.h"

#include <amqp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char MASK[] = "***";

/* amqp_parse_url() ends a part at ':' '@' '/' '?' '#' '[' ']' and decodes
 * '%'; spaces and control characters would be invisible in a log.  Bytes
 * from 0x80 stay as they are: librabbitmq 0.11 refuses to decode %80 and
 * up, and raw UTF-8 reads better anyway.  In an IPv6 literal ':' is not a
 * delimiter and must stay. */
static void put_encoded(struct buf_fixed *o, const char *text, bool keep_colons)
{
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        bool delimiter = strchr(":@/?#[]%", *c) != NULL && !(keep_colons && *c == ':');

        if (delimiter || *c <= ' ' || *c == 0x7f) {
            char escaped[4];
            snprintf(escaped, sizeof escaped, "%%%02X", *c);
            buf_fixed_add_str(o, escaped);
        } else {
            buf_fixed_add(o, (const char *)c, 1);
        }
    }
}

static void set_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

bool mq_url_mask(const char *url, char *out, size_t outlen, char *err, size_t errlen)
{
    struct buf_fixed o;
    struct amqp_connection_info info;
    /* All that is safe to show of a URL librabbitmq cannot read. */
    const char *unparsed = strncmp(url, "amqps://", 8) == 0  ? "amqps://***"
                           : strncmp(url, "amqp://", 7) == 0 ? "amqp://***"
                                                             : MASK;
    char *copy = strdup(url); /* amqp_parse_url() writes into its input */
    char port[16];

    buf_fixed_init(&o, out, outlen); /* empty until written */
    if (copy == NULL) {
        set_error(err, errlen, "out of memory");
        goto fail;
    }
    if (amqp_parse_url(copy, &info) != AMQP_STATUS_OK) {
        set_error(err, errlen,
                  "librabbitmq cannot parse '%s': expected amqp://user:pass@host:port/vhost or "
                  "amqps://..., any '@', ':', '/', '%%', ',' or ';' in the user name or password "
                  "written %%40, %%3A, %%2F, %%25, %%2C or %%3B",
                  unparsed);
        goto fail;
    }

    buf_fixed_add_str(&o, info.ssl ? "amqps://" : "amqp://");
    put_encoded(&o, info.user, false);
    buf_fixed_add_str(&o, ":");
    buf_fixed_add_str(&o, MASK);
    buf_fixed_add_str(&o, "@");
    /* An IPv6 literal, or the empty one "[]": without brackets an empty
     * host would read back as the default, localhost. */
    if (strchr(info.host, ':') != NULL || info.host[0] == '\0') {
        buf_fixed_add_str(&o, "[");
        put_encoded(&o, info.host, true);
        buf_fixed_add_str(&o, "]");
    } else {
        put_encoded(&o, info.host, false);
    }
    snprintf(port, sizeof port, ":%d/", info.port);
    buf_fixed_add_str(&o, port);
    put_encoded(&o, info.vhost, false);
    free(copy);
    return true;

fail:
    buf_fixed_add_str(&o, unparsed);
    free(copy);
    return false;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool mq_url_list_parse(const char *list, struct mq_url_list *out, char *err, size_t errlen)
{
    size_t len = strlen(list), entries = 1;
    char *p;

    out->n = 0;
    for (const char *c = list; *c; c++)
        entries += *c == ',' || *c == ';';
    if (len >= sizeof out->store) {
        set_error(err, errlen, "a list of %zu bytes: at most %zu", len, sizeof out->store - 1);
        return false;
    }
    if (entries > MQ_URL_LIST_MAX) {
        set_error(err, errlen, "%zu entries: at most %d", entries, MQ_URL_LIST_MAX);
        return false;
    }
    memcpy(out->store, list, len + 1);
    p = out->store;
    for (size_t i = 0; i < entries; i++) {
        char *end = p + strcspn(p, ",;"), *next = *end ? end + 1 : end;
        char why[384], masked[8];

        *end = '\0';
        while (is_space(*p))
            p++;
        while (end > p && is_space(end[-1]))
            *--end = '\0';
        if (*p == '\0') {
            if (entries == 1)
                set_error(err, errlen, "empty: expected amqp://user:pass@host:port/vhost");
            else
                set_error(err, errlen,
                          "entry %zu of %zu is empty (a list is URLs separated by "
                          "',' or ';'; a comma in a password is written %%2C)",
                          i + 1, entries);
            return false;
        }
        if (!mq_url_mask(p, masked, sizeof masked, why, sizeof why)) {
            if (entries == 1)
                set_error(err, errlen, "%s", why);
            else
                set_error(err, errlen, "entry %zu of %zu: %s", i + 1, entries, why);
            return false;
        }
        out->urls[out->n++] = p;
        p = next;
    }
    return true;
}

bool mq_url_list_mask(const char *list, char *out, size_t outlen, char *err, size_t errlen)
{
    struct mq_url_list *urls = malloc(sizeof *urls);
    struct buf_fixed o;
    bool ok;

    buf_fixed_init(&o, out, outlen);
    if (urls == NULL) {
        set_error(err, errlen, "out of memory");
        buf_fixed_add_str(&o, MASK);
        return false;
    }
    ok = mq_url_list_parse(list, urls, err, errlen);
    if (!ok)
        buf_fixed_add_str(&o, MASK);
    for (unsigned i = 0; ok && i < urls->n; i++) {
        char masked[512];
        mq_url_mask(urls->urls[i], masked, sizeof masked, NULL, 0);
        if (i > 0)
            buf_fixed_add_str(&o, ",");
        buf_fixed_add_str(&o, masked);
    }
    free(urls);
    return ok;
}
