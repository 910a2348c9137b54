/* files.h - what start-up and the TLS set-up ask of a file named in the
 * configuration. */
#ifndef GREET_FILES_H
#define GREET_FILES_H

#include <stdbool.h>
#include <stddef.h>

/* Whether path can be read now: an unreadable CA bundle, key or
 * certificate must be an error that names it, not a failure later.
 * Opening alone would pass a directory; reading one byte tells.  false
 * with why filled ("cannot read 'PATH': REASON"). */
bool file_readable(const char *path, char *why, size_t whylen);

#endif
