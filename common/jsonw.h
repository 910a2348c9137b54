/* jsonw.h - writing JSON by hand: the project's one JSON writer for bodies
 * of a fixed shape built per message (replies, synthetic jobs), where a
 * json_t tree would cost a dozen allocations each.  Output is what
 * jansson's compact dump gives, byte for byte, for valid UTF-8.  Each
 * call appends to out; false when out cannot grow. */
#ifndef GREET_JSONW_H
#define GREET_JSONW_H

#include "buf.h"

#include <stdbool.h>

/* s as a JSON string: '"' and '\\' escaped, control characters as \b \f
 * \n \r \t or \u00XX, anything else as it is; bytes that are not UTF-8
 * become U+FFFD, so the output is valid JSON whatever s holds. */
bool jsonw_string(struct buf *out, const char *s);

/* value as a JSON number. */
bool jsonw_int(struct buf *out, long long value);

#endif
