/* mq_url.h - broker URLs as librabbitmq reads them, for checking and for
 * showing with the password masked.  Uses librabbitmq only, so every
 * program may link it. */
#ifndef GREET_MQ_URL_H
#define GREET_MQ_URL_H

#include <stdbool.h>
#include <stddef.h>

/* Parses url with amqp_parse_url() and writes it back into out as
 * amqp[s]://user:***@host:port/vhost: defaults spelled out, the user name,
 * host and vhost percent-encoded where the URL syntax needs it, the
 * password always "***".  Returns false, and fills err (which never holds
 * the password), when librabbitmq cannot parse url; out then holds only
 * the scheme and "***".  out is always NUL-terminated, cut when too small;
 * err may be NULL when errlen is 0. */
bool mq_url_mask(const char *url, char *out, size_t outlen, char *err, size_t errlen);

/* AMQP_URL may list several brokers (the nodes of a cluster), each a full
 * URL with its own credentials and vhost, separated by ',' or ';' (the
 * separator Celery/kombu users know); a comma inside a password is written
 * %2C.  Spaces around an entry are ignored.  One URL is a list of one. */
#define MQ_URL_LIST_MAX   32
#define MQ_URL_LIST_BYTES 4096

struct mq_url_list {
    unsigned n;
    const char *urls[MQ_URL_LIST_MAX]; /* into store */
    char store[MQ_URL_LIST_BYTES];
};

/* Splits list into *out and checks every entry with amqp_parse_url():
 * false, with err naming the entry's position ("entry 2 of 3") and never a
 * password, when one is empty or unreadable, or the list is too long. */
bool mq_url_list_parse(const char *list, struct mq_url_list *out, char *err, size_t errlen);

/* The checker config.c is given for AMQP_URL (a config_url_fn): parses the
 * list and writes it back with every entry masked, joined by ','. */
bool mq_url_list_mask(const char *list, char *out, size_t outlen, char *err, size_t errlen);

#endif
