/* migration.c - greet-admin migrate's decisions; see migration.h. */
#include "migration.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

bool migration_is_sql_name(const char *name)
{
    size_t len = strlen(name);

    return name[0] != '.' && len > 4 && strcmp(name + len - 4, ".sql") == 0;
}

int migration_compare(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const struct migration_file *find_applied(const struct migration_file *applied, size_t n,
                                                 const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(applied[i].name, name) == 0)
            return &applied[i];
    return NULL;
}

bool migration_plan(const struct migration_file *files, size_t n,
                    const struct migration_file *applied, size_t n_applied,
                    enum migration_action *actions, char *err, size_t errlen)
{
    const struct migration_file *first_changed = NULL, *first_record = NULL;
    size_t changed = 0;

    for (size_t i = 0; i < n; i++) {
        const struct migration_file *record = find_applied(applied, n_applied, files[i].name);

        actions[i] = record ? MIGRATION_SKIP : MIGRATION_APPLY;
        if (record && strcmp(record->checksum, files[i].checksum) != 0 && changed++ == 0) {
            first_changed = &files[i];
            first_record = record;
        }
    }
    if (changed == 0)
        return true;
    snprintf(err, errlen,
             "%s changed since it was applied (checksum then %.12s..., now %.12s...)%s; a "
             "migration that ran is never run again: restore it and put the change in a new file",
             first_changed->name, first_record->checksum, first_changed->checksum,
             changed > 1 ? ", and other applied files changed too" : "");
    return false;
}

/* ---- Reading SQL as PostgreSQL does, enough to find its statements ---- */

static bool ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

static bool tag_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80;
}

/* Past the comment at t[i] ("--" to the end of the line, or a block
 * comment, which nests in PostgreSQL); i when there is none. */
static size_t skip_comment(const char *t, size_t len, size_t i)
{
    if (i + 1 < len && t[i] == '-' && t[i + 1] == '-') {
        while (i < len && t[i] != '\n')
            i++;
        return i;
    }
    if (i + 1 < len && t[i] == '/' && t[i + 1] == '*') {
        unsigned depth = 1;
        i += 2;
        while (i < len && depth > 0) {
            if (i + 1 < len && t[i] == '/' && t[i + 1] == '*') {
                depth++;
                i += 2;
            } else if (i + 1 < len && t[i] == '*' && t[i + 1] == '/') {
                depth--;
                i += 2;
            } else {
                i++;
            }
        }
        return i;
    }
    return i;
}

/* Past the quoted text that starts at t[i] with quote; '' (or "") inside
 * stands for one, and with escapes (E'...') a backslash takes the next
 * character along. */
static size_t skip_quoted(const char *t, size_t len, size_t i, char quote, bool escapes)
{
    for (i++; i < len; i++) {
        if (escapes && t[i] == '\\') {
            i++;
        } else if (t[i] == quote) {
            if (i + 1 < len && t[i + 1] == quote)
                i++;
            else
                return i + 1;
        }
    }
    return len;
}

/* The length of the dollar-quote opener ($$ or $tag$) at t[i], 0 when
 * there is none ($1 is a parameter). */
static size_t dollar_tag(const char *t, size_t len, size_t i)
{
    size_t j = i + 1;

    if (i > 0 && ident_char(t[i - 1]))
        return 0; /* a $ inside an identifier */
    if (j < len && isdigit((unsigned char)t[j]))
        return 0;
    while (j < len && tag_char(t[j]))
        j++;
    return j < len && t[j] == '$' ? j - i + 1 : 0;
}

static size_t skip_dollar_quoted(const char *t, size_t len, size_t i, size_t tag_len)
{
    for (size_t j = i + tag_len; j + tag_len <= len; j++)
        if (memcmp(t + j, t + i, tag_len) == 0)
            return j + tag_len;
    return len;
}

/* The offset of the next character of stops outside comments, quoted
 * strings and identifiers and dollar quotes, at or after i; len if none. */
static size_t next_unquoted(const char *t, size_t len, size_t i, const char *stops)
{
    while (i < len) {
        size_t after = skip_comment(t, len, i), tag;
        char c = t[i];

        if (after != i) {
            i = after;
        } else if (strchr(stops, c) != NULL && c != '\0') {
            return i;
        } else if (c == '\'') {
            bool escapes =
                i > 0 && (t[i - 1] == 'E' || t[i - 1] == 'e') && (i < 2 || !ident_char(t[i - 2]));
            i = skip_quoted(t, len, i, '\'', escapes);
        } else if (c == '"') {
            i = skip_quoted(t, len, i, '"', false);
        } else if (c == '$' && (tag = dollar_tag(t, len, i)) > 0) {
            i = skip_dollar_quoted(t, len, i, tag);
        } else if (ident_char(c)) {
            while (i < len && ident_char(t[i]))
                i++;
        } else {
            i++;
        }
    }
    return len;
}

/* Past blanks and comments from i. */
static size_t skip_blanks(const char *t, size_t len, size_t i)
{
    while (i < len) {
        size_t after = skip_comment(t, len, i);
        if (after != i)
            i = after;
        else if (isspace((unsigned char)t[i]))
            i++;
        else
            break;
    }
    return i;
}

bool migration_in_transaction(const char *text, size_t len)
{
    size_t marker_len = strlen(MIGRATION_NO_TRANSACTION);
    size_t i = 0;

    /* Only the leading comment lines count: a marker further down would
     * be easy to miss when reading the file. */
    while (i < len) {
        size_t line_end = i, trimmed;
        while (line_end < len && text[line_end] != '\n')
            line_end++;
        trimmed = line_end;
        while (trimmed > i && isspace((unsigned char)text[trimmed - 1]))
            trimmed--;
        if (trimmed - i == marker_len &&
            memcmp(text + i, MIGRATION_NO_TRANSACTION, marker_len) == 0)
            return false;
        if (trimmed > i && !(trimmed - i >= 2 && text[i] == '-' && text[i + 1] == '-'))
            return true; /* the first line of SQL */
        i = line_end + 1;
    }
    return true;
}

unsigned migration_psql_line(const char *text, size_t len)
{
    size_t at = next_unquoted(text, len, 0, "\\");
    unsigned line = 1;

    if (at == len)
        return 0;
    for (size_t i = 0; i < at; i++)
        if (text[i] == '\n')
            line++;
    return line;
}

bool migration_next_statement(const char *text, size_t len, size_t *pos, size_t *start, size_t *end)
{
    size_t i = *pos;

    for (;;) {
        size_t semicolon;

        i = skip_blanks(text, len, i);
        if (i >= len) {
            *pos = len;
            return false;
        }
        if (text[i] == ';') { /* an empty statement */
            i++;
            continue;
        }
        semicolon = next_unquoted(text, len, i, ";");
        *start = i;
        *end = semicolon < len ? semicolon + 1 : len;
        while (*end > *start && isspace((unsigned char)text[*end - 1]))
            (*end)--;
        *pos = semicolon < len ? semicolon + 1 : len;
        return true;
    }
}
