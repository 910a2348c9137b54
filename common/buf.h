/* buf.h - a growable byte buffer, reused across jobs so the hot path does
 * not allocate once it has warmed up.  Contents are always NUL-terminated. */
#ifndef GREET_BUF_H
#define GREET_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    size_t cap;
};

bool buf_reserve(struct buf *b, size_t extra);
bool buf_append(struct buf *b, const void *data, size_t len);
bool buf_append_str(struct buf *b, const char *s);
void buf_reset(struct buf *b);
/* Frees the storage when it grew past keep bytes (one huge message must
 * not pin its memory for the life of the process), else just empties it. */
void buf_shrink(struct buf *b, size_t keep);
void buf_free(struct buf *b);

/* A caller's fixed array, filled left to right: cut when full, always
 * NUL-terminated (when it has room for anything at all).  For messages
 * and masked URLs, whose size the caller chose. */
struct buf_fixed {
    char *data;
    size_t size, len;
};

void buf_fixed_init(struct buf_fixed *f, char *data, size_t size);
void buf_fixed_add(struct buf_fixed *f, const char *text, size_t len);
void buf_fixed_add_str(struct buf_fixed *f, const char *text);

#endif
