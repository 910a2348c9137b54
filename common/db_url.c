/* db_url.c - libpq connection strings and URIs; see db_url.h.
 *
 * libpq reads DATABASE_URL, so libpq decides what is a password: a
 * percent-encoded key, a '?' or an escaped space in the value, a newline
 * between keywords are all its rules, not ours.  The masked string is
 * rebuilt from PQconninfoParse()'s options, never cut out of the input. */
#include "db_url.h"

#include "buf.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

static const char MASK[] = "***";

/* password and sslpassword by name as well, in case a libpq ever stops
 * flagging them: a secret shown is worse than a setting hidden. */
static bool is_secret(const PQconninfoOption *option)
{
    return strcmp(option->keyword, "password") == 0 ||
           strcmp(option->keyword, "sslpassword") == 0 ||
           (option->dispchar && strchr(option->dispchar, '*') != NULL);
}

/* A value as libpq's keyword syntax reads it back: quoted when empty or
 * holding blanks, quotes or backslashes, those two escaped. */
static void put_value(struct buf_fixed *o, const char *value)
{
    bool quote = value[0] == '\0';

    for (const char *c = value; *c && !quote; c++)
        quote = strchr(" \t\n\r\v\f'\\", *c) != NULL;
    if (!quote) {
        buf_fixed_add_str(o, value);
        return;
    }
    buf_fixed_add_str(o, "'");
    for (const char *c = value; *c; c++) {
        if (*c == '\'' || *c == '\\')
            buf_fixed_add_str(o, "\\");
        buf_fixed_add(o, c, 1);
    }
    buf_fixed_add_str(o, "'");
}

/* A quoted span of a libpq message that cannot be part of a secret:
 * libpq's own punctuation ("=", "]", ...) or a keyword it knows. */
static bool safe_to_quote(const char *span, size_t len, const PQconninfoOption *known)
{
    if (len == 1 && strchr("=]:/", span[0]) != NULL)
        return true;
    for (const PQconninfoOption *option = known; option && option->keyword; option++)
        if (strlen(option->keyword) == len && strncmp(option->keyword, span, len) == 0)
            return !is_secret(option);
    return false;
}

/* libpq quotes the part of the input it stumbled on -- a word without
 * '=', a bad percent-encoded token, even the whole URI -- and that part
 * may be a password or a piece of one.  So every quoted span that is not
 * safe_to_quote() becomes "***".  The spans pair up only when the input
 * holds no '"' of its own and the message is libpq's English (these
 * programs never call setlocale(), so libpq does not translate); in any
 * other case the message is withheld whole. */
static void put_parse_error(struct buf_fixed *o, const char *url, const char *message)
{
    size_t len;
    PQconninfoOption *known;
    char *ignored = NULL;
    bool masked = false, english = true;

    if (message == NULL) {
        buf_fixed_add_str(o, "out of memory");
        return;
    }
    len = strlen(message);
    while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == ' '))
        len--;
    for (size_t i = 0; i < len; i++)
        english = english && (unsigned char)message[i] < 0x80;
    if (!english || strchr(url, '"') != NULL) {
        buf_fixed_add_str(
            o, "libpq cannot parse it (its message is withheld: it would quote the input)");
        return;
    }

    known = PQconninfoParse("", &ignored); /* every keyword, no value */
    PQfreemem(ignored);
    for (size_t i = 0; i < len;) {
        const char *open = memchr(message + i, '"', len - i);
        const char *close = open ? memchr(open + 1, '"', len - (size_t)(open + 1 - message)) : NULL;

        if (open == NULL) {
            buf_fixed_add(o, message + i, len - i);
            break;
        }
        buf_fixed_add(o, message + i, (size_t)(open + 1 - (message + i)));
        if (close == NULL) {
            buf_fixed_add_str(o, MASK); /* an unpaired quote: the rest is input */
            masked = true;
            break;
        }
        if (safe_to_quote(open + 1, (size_t)(close - open - 1), known)) {
            buf_fixed_add(o, open + 1, (size_t)(close - open - 1));
        } else {
            buf_fixed_add_str(o, MASK);
            masked = true;
        }
        buf_fixed_add_str(o, "\"");
        i = (size_t)(close + 1 - message);
    }
    if (masked)
        buf_fixed_add_str(o, " (*** hides input that may be a password)");
    PQconninfoFree(known);
}

bool db_url_mask(const char *url, char *out, size_t outlen, char *err, size_t errlen)
{
    struct buf_fixed o, e;
    char *parse_error = NULL;
    PQconninfoOption *options = PQconninfoParse(url, &parse_error);

    buf_fixed_init(&o, out, outlen); /* both empty until written */
    buf_fixed_init(&e, err, errlen);
    if (options == NULL) {
        /* All that is safe to show of a string libpq cannot read. */
        if (strncmp(url, "postgresql://", 13) == 0)
            buf_fixed_add_str(&o, "postgresql://***");
        else if (strncmp(url, "postgres://", 11) == 0)
            buf_fixed_add_str(&o, "postgres://***");
        else
            buf_fixed_add_str(&o, MASK);
        put_parse_error(&e, url, parse_error);
        PQfreemem(parse_error);
        return false;
    }
    for (const PQconninfoOption *option = options; option->keyword; option++) {
        if (option->val == NULL)
            continue;
        if (o.len > 0)
            buf_fixed_add_str(&o, " ");
        buf_fixed_add_str(&o, option->keyword);
        buf_fixed_add_str(&o, "=");
        if (is_secret(option))
            buf_fixed_add_str(&o, MASK);
        else
            put_value(&o, option->val);
    }
    PQconninfoFree(options);
    return true;
}
