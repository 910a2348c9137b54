/* utf8.h - UTF-8 decoding, one code point at a time (pure). */
#ifndef GREET_UTF8_H
#define GREET_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Decodes the code point at s (len > 0 bytes left) into *code_point;
 * returns its length in bytes, 0 when s does not start with valid UTF-8
 * (overlong forms, surrogates and values past U+10FFFF are invalid). */
unsigned utf8_next(const unsigned char *s, size_t len, unsigned long *code_point);

/* Unicode's control characters (general category Cc): C0, DEL and C1. */
bool utf8_is_control(unsigned long code_point);

#endif
