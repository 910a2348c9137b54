/* db_url.h - libpq connection strings and URIs, for checking and for
 * showing with every secret masked.  Uses libpq only: the programs without
 * a database do not link it. */
#ifndef GREET_DB_URL_H
#define GREET_DB_URL_H

#include <stdbool.h>
#include <stddef.h>

/* Parses url with PQconninfoParse() and writes it back into out as a
 * keyword/value connection string (a URI comes back in that form too),
 * every keyword libpq calls secret -- password, sslpassword -- as "***".
 * Returns false, and fills err with libpq's reason minus any text it
 * quotes from url, when libpq cannot parse url; out then holds only the
 * URI scheme, if any, and "***".  out is always NUL-terminated, cut when
 * too small; err may be NULL when errlen is 0. */
bool db_url_mask(const char *url, char *out, size_t outlen, char *err, size_t errlen);

#endif
