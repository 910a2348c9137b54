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

#endif
