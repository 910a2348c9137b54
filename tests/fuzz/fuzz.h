/* fuzz.h - what the libFuzzer targets in tests/fuzz/ share.
 *
 * A target is fuzz_<name>.c defining LLVMFuzzerTestOneInput(), listed in
 * the Makefile's FUZZ_TARGETS, with seeds in corpus/<name>/.  ASan, UBSan
 * and LeakSanitizer catch memory errors, undefined behaviour and leaks;
 * each target states with fuzz_require() the properties its module
 * promises on top of that, so a wrong answer fails like a crash does. */
#ifndef GREET_FUZZ_H
#define GREET_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What libFuzzer calls, once per input; returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Prints the message and aborts when ok is false: libFuzzer then keeps
 * the input that did it under build/fuzz/crashes/. */
void fuzz_require(bool ok, const char *format, ...) __attribute__((format(printf, 2, 3)));

/* An input read front to back as bytes and NUL-terminated strings, so
 * that one input can carry several arguments.  Once it is used up, bytes
 * read as 0 and strings as "". */
struct fuzz_input {
    char *copy; /* the input and a final NUL, so the last string ends */
    size_t size, pos;
};

void fuzz_input_init(struct fuzz_input *in, const uint8_t *data, size_t size);
unsigned char fuzz_byte(struct fuzz_input *in);
const char *fuzz_string(struct fuzz_input *in);
bool fuzz_input_left(const struct fuzz_input *in);
void fuzz_input_free(struct fuzz_input *in);

/* Checks that jansson does not share with the code under test. */
bool fuzz_valid_utf8(const char *s, size_t len);

#endif
