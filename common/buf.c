/* buf.c - growable byte buffer; see buf.h. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

bool buf_reserve(struct buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    size_t cap = b->cap ? b->cap : 64;
    char *grown;

    if (need < b->len) /* overflow */
        return false;
    if (need <= b->cap)
        return true;
    while (cap < need)
        cap *= 2;
    grown = realloc(b->data, cap);
    if (grown == NULL)
        return false;
    b->data = grown;
    b->cap = cap;
    return true;
}

bool buf_append(struct buf *b, const void *data, size_t len)
{
    if (!buf_reserve(b, len))
        return false;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return true;
}

bool buf_append_str(struct buf *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_shrink(struct buf *b, size_t keep)
{
    if (b->cap > keep)
        buf_free(b);
    else
        buf_reset(b);
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void buf_fixed_init(struct buf_fixed *f, char *data, size_t size)
{
    f->data = data;
    f->size = size;
    f->len = 0;
    if (size > 0)
        data[0] = '\0';
}

void buf_fixed_add(struct buf_fixed *f, const char *text, size_t len)
{
    if (f->size == 0)
        return;
    while (len-- > 0 && f->len + 1 < f->size)
        f->data[f->len++] = *text++;
    f->data[f->len] = '\0';
}

void buf_fixed_add_str(struct buf_fixed *f, const char *text)
{
    buf_fixed_add(f, text, strlen(text));
}
