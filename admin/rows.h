/* rows.h - what greet-admin prints: rows of named columns, either as an
 * aligned table for a person at a terminal, or as one JSON object per line
 * for a program.  Values come from the queues and the database, so the
 * table shows control characters and bytes that are not UTF-8 as '?'
 * (a dead job's headers must not drive the terminal), and JSON escapes
 * them (jsonw). */
#ifndef GREET_ADMIN_ROWS_H
#define GREET_ADMIN_ROWS_H

#include "buf.h"

#include <stdbool.h>
#include <stdio.h>

enum rows_format {
    ROWS_TABLE,
    ROWS_JSON,
};

/* "table", "json", or "auto": a table when stdout is a terminal. */
bool rows_format_parse(const char *name, bool to_terminal, enum rows_format *format);

struct rows_column {
    const char *name; /* the JSON key; upper-cased as the table's heading */
    bool number;      /* JSON: the value unquoted (it is a decimal number) */
};

/* A table's cells are kept until rows_finish() (the widths depend on
 * every row); JSON lines go out as they come. */
struct rows {
    enum rows_format format;
    FILE *out;
    const struct rows_column *columns;
    unsigned n_columns;
    struct buf cells; /* table: every cell, NUL-terminated, row after row */
    size_t n_rows;
    struct buf line; /* JSON: the line being written */
    bool failed;     /* out of memory */
};

/* columns: at most ROWS_COLUMNS_MAX; the caller's, kept. */
#define ROWS_COLUMNS_MAX 16
void rows_init(struct rows *r, enum rows_format format, FILE *out,
               const struct rows_column *columns, unsigned n_columns);
/* One row, values[0..n_columns): NULL for none (the table shows "-",
 * JSON null).  A table cell longer than ROWS_CELL_MAX characters is cut,
 * with "..." at its end. */
#define ROWS_CELL_MAX 60
void rows_add(struct rows *r, const char *const *values);
/* Writes the table (nothing when it has no rows); false when a write
 * failed or memory ran out along the way. */
bool rows_finish(struct rows *r);
void rows_free(struct rows *r);

#endif
