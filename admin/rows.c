/* rows.c - tables and JSON lines; see rows.h. */
#include "rows.h"

#include "jsonw.h"
#include "utf8.h"

#include <ctype.h>
#include <string.h>

bool rows_format_parse(const char *name, bool to_terminal, enum rows_format *format)
{
    if (strcmp(name, "table") == 0)
        *format = ROWS_TABLE;
    else if (strcmp(name, "json") == 0)
        *format = ROWS_JSON;
    else if (strcmp(name, "auto") == 0)
        *format = to_terminal ? ROWS_TABLE : ROWS_JSON;
    else
        return false;
    return true;
}

void rows_init(struct rows *r, enum rows_format format, FILE *out,
               const struct rows_column *columns, unsigned n_columns)
{
    memset(r, 0, sizeof *r);
    r->format = format;
    r->out = out;
    r->columns = columns;
    r->n_columns = n_columns < ROWS_COLUMNS_MAX ? n_columns : ROWS_COLUMNS_MAX;
}

/* Characters (code points) of a cell: what it takes on screen. */
static size_t width_of(const char *cell)
{
    size_t width = 0;

    for (const unsigned char *s = (const unsigned char *)cell; *s; s++)
        width += (*s & 0xC0) != 0x80;
    return width;
}

/* A cell as the table shows it: printable, at most ROWS_CELL_MAX
 * characters, NUL-terminated in r->cells. */
static void add_cell(struct rows *r, const char *value)
{
    const unsigned char *s = (const unsigned char *)(value ? value : "-");
    size_t len = strlen((const char *)s), chars = 0;
    size_t keep = width_of((const char *)s) > ROWS_CELL_MAX ? ROWS_CELL_MAX - 3 : ROWS_CELL_MAX;

    while (len > 0 && chars < keep) {
        unsigned long code_point;
        unsigned n = utf8_next(s, len, &code_point);

        if (n == 0 || utf8_is_control(code_point)) {
            r->failed |= !buf_append(&r->cells, "?", 1);
            n = n == 0 ? 1 : n;
        } else {
            r->failed |= !buf_append(&r->cells, s, n);
        }
        s += n;
        len -= n;
        chars++;
    }
    if (len > 0)
        r->failed |= !buf_append_str(&r->cells, "...");
    r->failed |= !buf_append(&r->cells, "", 1);
}

static void add_json(struct rows *r, const char *const *values)
{
    buf_reset(&r->line);
    r->failed |= !buf_append_str(&r->line, "{");
    for (unsigned i = 0; i < r->n_columns; i++) {
        if (i > 0)
            r->failed |= !buf_append_str(&r->line, ",");
        r->failed |= !jsonw_string(&r->line, r->columns[i].name);
        r->failed |= !buf_append_str(&r->line, ":");
        if (values[i] == NULL)
            r->failed |= !buf_append_str(&r->line, "null");
        else if (r->columns[i].number)
            r->failed |= !buf_append_str(&r->line, values[i]);
        else
            r->failed |= !jsonw_string(&r->line, values[i]);
    }
    r->failed |= !buf_append_str(&r->line, "}\n");
    if (!r->failed)
        fwrite(r->line.data, 1, r->line.len, r->out);
}

void rows_add(struct rows *r, const char *const *values)
{
    if (r->format == ROWS_JSON) {
        add_json(r, values);
        return;
    }
    for (unsigned i = 0; i < r->n_columns; i++)
        add_cell(r, values[i]);
    r->n_rows++;
}

static void print_cell(FILE *out, const char *text, size_t width, bool last)
{
    fputs(text, out);
    if (last) {
        fputc('\n', out);
        return;
    }
    for (size_t w = width_of(text); w < width + 2; w++)
        fputc(' ', out);
}

bool rows_finish(struct rows *r)
{
    size_t widths[ROWS_COLUMNS_MAX] = {0};
    unsigned n = r->n_columns;
    const char *cell;

    if (r->format == ROWS_TABLE && r->n_rows > 0 && !r->failed) {
        char heading[64];

        for (unsigned i = 0; i < n; i++)
            widths[i] = strlen(r->columns[i].name);
        cell = r->cells.data;
        for (size_t row = 0; row < r->n_rows; row++) {
            for (unsigned i = 0; i < n; i++) {
                size_t w = width_of(cell);
                widths[i] = w > widths[i] ? w : widths[i];
                cell += strlen(cell) + 1;
            }
        }
        for (unsigned i = 0; i < n; i++) {
            size_t k;
            for (k = 0; r->columns[i].name[k] && k + 1 < sizeof heading; k++)
                heading[k] = (char)toupper((unsigned char)r->columns[i].name[k]);
            heading[k] = '\0';
            print_cell(r->out, heading, widths[i], i + 1 == n);
        }
        cell = r->cells.data;
        for (size_t row = 0; row < r->n_rows; row++) {
            for (unsigned i = 0; i < n; i++) {
                print_cell(r->out, cell, widths[i], i + 1 == n);
                cell += strlen(cell) + 1;
            }
        }
    }
    if (fflush(r->out) != 0 || ferror(r->out))
        return false;
    return !r->failed;
}

void rows_free(struct rows *r)
{
    buf_free(&r->cells);
    buf_free(&r->line);
}
