/* migration.h - greet-admin migrate's decisions (pure): which files, in
 * which order, which to apply, whether one may run in a transaction, and
 * how to cut one into statements when it may not. */
#ifndef GREET_ADMIN_MIGRATION_H
#define GREET_ADMIN_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>

/* A file of the SQL directory that is a migration: "*.sql", not hidden. */
bool migration_is_sql_name(const char *name);

/* The order files are applied in: byte order of their names (what `ls`
 * gives in the C locale), so 001_schema.sql before 010_more.sql and
 * sample/... after every top-level file.  For qsort over char *. */
int migration_compare(const void *a, const void *b);

/* A file found now, and one recorded as applied; name relative to the SQL
 * directory ("001_schema.sql", "sample/users.sql"), checksum its SHA-256
 * in hex. */
struct migration_file {
    const char *name;
    const char *checksum;
};

enum migration_action {
    MIGRATION_APPLY, /* never applied */
    MIGRATION_SKIP,  /* applied, unchanged since */
};

/* What to do with each of files[0..n): actions[i].  false, with err naming
 * the file and both checksums, when a file applied before has changed
 * since: nothing may then be applied (a changed migration is never run
 * again; a new file carries the change).  Records of files no longer
 * there are ignored. */
bool migration_plan(const struct migration_file *files, size_t n,
                    const struct migration_file *applied, size_t n_applied,
                    enum migration_action *actions, char *err, size_t errlen);

/* Whether a file runs in a transaction of its own (the default, so a
 * failure leaves nothing half-done).  A file whose statements cannot run
 * in a transaction block (CREATE INDEX CONCURRENTLY, VACUUM, ALTER TYPE
 * ... ADD VALUE before PostgreSQL 12) says so in its leading comments with
 * a line "-- greet:no-transaction"; it then runs statement by statement
 * and must be re-runnable, since a failure can leave it half-applied. */
#define MIGRATION_NO_TRANSACTION "-- greet:no-transaction"
bool migration_in_transaction(const char *text, size_t len);

/* The 1-based line of the first psql meta-command (an unquoted backslash,
 * as in \set or \i), 0 when there is none: libpq runs SQL, not psql's
 * commands. */
unsigned migration_psql_line(const char *text, size_t len);

/* The next statement of text at or after *pos: true with [*start, *end)
 * holding it (its ';' included, surrounding blanks left out) and *pos
 * moved past it; false when only blanks and comments are left.  ';' inside
 * quotes, identifiers, dollar quotes and comments does not end a
 * statement. */
bool migration_next_statement(const char *text, size_t len, size_t *pos, size_t *start,
                              size_t *end);

#endif
