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
                  "amqps://..., any '@', ':', '/' or '%%' in the user name or password written "
                  "%%40, %%3A, %%2F or %%25",
                  unparsed);
        goto fail;
    }

    buf_fixed_add_str(&o, info.ssl ? "amqps://" : "amqp://");
    put_encoded(&o, info.user, false);
    buf_fixed_add_str(&o, ":");
    buf_fixed_add_str(&o, MASK);
    buf_fixed_add_str(&o, "@");
    if (strchr(info.host, ':') != NULL) {
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
