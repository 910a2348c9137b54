/* cmd_migrate.c - greet-admin migrate: the numbered files of the SQL
 * directory (the .sql files of sql/, then with --sample those of sql/sample/) into
 * DATABASE_URL, in name order, each file once.
 *
 * - What ran is recorded in greet_schema_migrations (name, its SHA-256,
 *   when), in the same transaction as the file: a file is applied and
 *   recorded, or neither.  A recorded file is skipped; one whose checksum
 *   changed since stops the run before anything is applied.
 * - Many hosts may run it at once: the whole run holds a session-level
 *   advisory lock (MIGRATE_LOCK_KEY), so the runs take turns, and each
 *   after the first finds everything recorded.
 * - The files are the ones psql -f applies today (the README, the test
 *   harness, docker/initdb.sh): re-runnable, no BEGIN/COMMIT of their own,
 *   nothing that refuses a transaction block, no psql meta-commands --
 *   libpq runs SQL, not psql, so a backslash command stops the run before
 *   it connects.  A future file that cannot run in a transaction says so
 *   (migration.h, MIGRATION_NO_TRANSACTION) and runs statement by
 *   statement.
 * - DATABASE_URL must name a role that may create tables in the schema
 *   and create roles (002 creates greet_worker): the database owner with
 *   CREATEROLE, or a superuser.  greet_worker itself only reads. */
#include "clock.h"
#include "commands.h"
#include "db_url.h"
#include "migration.h"
#include "signals.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The installed SQL directory (make install), set by the Makefile. */
#ifndef GREET_SHARE_SQL
#define GREET_SHARE_SQL "/usr/local/share/greet/sql"
#endif

/* The advisory lock of every migrate run: "greetmig" in ASCII.  Advisory
 * locks are per database, so runs against two databases do not wait for
 * each other. */
#define MIGRATE_LOCK_KEY "7454131819671021927"

static const char name[] = "greet-admin migrate";

struct sql_file {
    char *name; /* relative to the directory: "001_schema.sql", "sample/users.sql" */
    char *text; /* the whole file, NUL-terminated */
    size_t len;
    char checksum[65]; /* SHA-256, hex */
};

struct migrate {
    const struct config *cfg;
    const char *dir;
    char installed[4200]; /* beside the program: PREFIX/share/greet/sql */
    struct sql_file *files;
    size_t n_files, cap;
    struct migration_file *applied; /* what greet_schema_migrations holds */
    char **applied_at;
    size_t n_applied;
    PGconn *conn;
    struct rows rows;
};

static bool is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The SQL directory make install puts beside the program: PREFIX/bin and
 * PREFIX/share/greet/sql, whatever PREFIX (and DESTDIR) was.  "" when the
 * program's path cannot be read. */
static void installed_dir(char *out, size_t outlen)
{
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char *slash;

    out[0] = '\0';
    if (len <= 0)
        return;
    exe[len] = '\0';
    if ((slash = strrchr(exe, '/')) == NULL)
        return;
    *slash = '\0';
    snprintf(out, outlen, "%s/../share/greet/sql", exe);
}

/* The SQL directory: --sql-dir (GREET_SQL_DIR), else the installed one
 * (beside the program, else where the build's PREFIX puts it), else
 * ./sql.  Returns 0, or the exit status. */
static int find_dir(struct migrate *m)
{
    installed_dir(m->installed, sizeof m->installed);
    if (m->cfg->sql_dir != NULL) {
        struct stat st;
        int found = stat(m->cfg->sql_dir, &st);
        if (found != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "%s: GREET_SQL_DIR (--sql-dir): '%s': %s\n", name, m->cfg->sql_dir,
                    found != 0 ? strerror(errno) : "not a directory");
            return 2;
        }
        m->dir = m->cfg->sql_dir;
    } else if (m->installed[0] != '\0' && is_dir(m->installed)) {
        m->dir = m->installed;
    } else if (is_dir(GREET_SHARE_SQL)) {
        m->dir = GREET_SHARE_SQL;
    } else if (is_dir("sql")) {
        m->dir = "sql";
    } else {
        fprintf(stderr,
                "%s: no SQL directory: not installed (%s, %s) and no ./sql; give one with "
                "--sql-dir or GREET_SQL_DIR\n",
                name, m->installed[0] ? m->installed : "?", GREET_SHARE_SQL);
        return 2;
    }
    return 0;
}

static char *join(const char *a, const char *sep, const char *b)
{
    size_t len = strlen(a) + strlen(sep) + strlen(b) + 1;
    char *out = malloc(len);

    if (out != NULL)
        snprintf(out, len, "%s%s%s", a, sep, b);
    return out;
}

static bool read_whole(const char *path, char **text, size_t *len)
{
    FILE *in = fopen(path, "rb");
    struct stat st;
    bool ok;

    *text = NULL;
    if (in == NULL)
        return false;
    if (fstat(fileno(in), &st) != 0 || (*text = malloc((size_t)st.st_size + 1)) == NULL) {
        fclose(in);
        return false;
    }
    *len = fread(*text, 1, (size_t)st.st_size, in);
    ok = !ferror(in) && *len == (size_t)st.st_size;
    (*text)[*len] = '\0';
    fclose(in);
    return ok;
}

/* Adds the *.sql files of dir (prefix: how their names start), in
 * order.  Returns 0, or the exit status. */
static int add_files(struct migrate *m, const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *entry;
    int status = 0;

    if (d == NULL) {
        fprintf(stderr, "%s: cannot read %s: %s\n", name, dir, strerror(errno));
        return 1;
    }
    while ((entry = readdir(d)) != NULL) {
        char *path;
        struct stat st;
        bool regular;

        if (!migration_is_sql_name(entry->d_name))
            continue;
        path = join(dir, "/", entry->d_name);
        regular = path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
        free(path);
        if (!regular)
            continue;
        if (n == cap) {
            char **grown = realloc(names, (cap = cap ? 2 * cap : 16) * sizeof *names);
            if (grown == NULL)
                goto oom;
            names = grown;
        }
        if ((names[n] = strdup(entry->d_name)) == NULL)
            goto oom;
        n++;
    }
    qsort(names, n, sizeof *names, migration_compare);
    for (size_t i = 0; i < n && status == 0; i++) {
        struct sql_file *f;
        char *path = join(dir, "/", names[i]);

        if (m->n_files == m->cap) {
            struct sql_file *grown =
                realloc(m->files, (m->cap = m->cap ? 2 * m->cap : 16) * sizeof *grown);
            if (grown == NULL) {
                free(path);
                goto oom;
            }
            m->files = grown;
        }
        f = &m->files[m->n_files];
        memset(f, 0, sizeof *f);
        f->name = join(prefix, "", names[i]);
        if (path == NULL || f->name == NULL) {
            free(path);
            free(f->name);
            goto oom;
        }
        m->n_files++;
        if (!read_whole(path, &f->text, &f->len)) {
            fprintf(stderr, "%s: cannot read %s: %s\n", name, path, strerror(errno));
            status = 1;
        }
        free(path);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return status;

oom:
    fprintf(stderr, "%s: out of memory listing %s\n", name, dir);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return 1;
}

/* Before connecting: what libpq could not run.  Returns 0, or 1. */
static int check_files(const struct migrate *m)
{
    for (size_t i = 0; i < m->n_files; i++) {
        const struct sql_file *f = &m->files[i];
        unsigned line = migration_psql_line(f->text, f->len);

        if (memchr(f->text, '\0', f->len) != NULL) {
            fprintf(stderr, "%s: %s/%s holds a NUL byte: not SQL text\n", name, m->dir, f->name);
            return 1;
        }
        if (line > 0) {
            fprintf(stderr,
                    "%s: %s/%s:%u: a psql meta-command (a backslash outside quotes); migrate "
                    "runs SQL through libpq, not psql\n",
                    name, m->dir, f->name, line);
            return 1;
        }
    }
    return 0;
}

/* The line (1-based) of a character position (PostgreSQL counts
 * characters from 1) in text. */
static unsigned line_of(const char *text, long position)
{
    unsigned line = 1;
    long chars = 0;

    for (const unsigned char *s = (const unsigned char *)text; *s && chars < position - 1; s++) {
        if (*s == '\n')
            line++;
        chars += (*s & 0xC0) != 0x80;
    }
    return line;
}

/* Reports a failed result of what (about text, when it is a file's SQL)
 * and clears it. */
static void report(const struct migrate *m, PGresult *res, const char *what, const char *text)
{
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *sqlstate = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *position = res ? PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION) : NULL;
    char where[32] = "";

    if (primary == NULL) {
        /* No error from the server: the connection's (or an odd status). */
        const char *message = PQerrorMessage(m->conn);
        size_t len = strlen(message);
        while (len > 0 && (message[len - 1] == '\n' || message[len - 1] == ' '))
            len--;
        fprintf(stderr, "%s: %s: %.*s%s%s\n", name, what, (int)len, message,
                len == 0 && res ? "unexpected result " : "",
                len == 0 && res ? PQresStatus(PQresultStatus(res)) : "");
        PQclear(res);
        return;
    }
    if (text != NULL && position != NULL)
        snprintf(where, sizeof where, ", line %u", line_of(text, atol(position)));
    fprintf(stderr, "%s: %s%s: %s (SQLSTATE %s)\n", name, what, where, primary,
            sqlstate ? sqlstate : "?");
    if (sqlstate && strcmp(sqlstate, "42501") == 0)
        fprintf(stderr,
                "%s: DATABASE_URL must name a role that may create tables and roles (the "
                "database owner with CREATEROLE, or a superuser), not the worker's read-only "
                "role\n",
                name);
    PQclear(res);
}

static bool result_ok(PGresult *res)
{
    ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;

    return status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY;
}

/* Runs sql; false (reported as what) when it failed. */
static bool run_sql(struct migrate *m, const char *sql, const char *what, const char *text)
{
    PGresult *res = PQexec(m->conn, sql);

    if (!result_ok(res)) {
        report(m, res, what, text);
        return false;
    }
    PQclear(res);
    return true;
}

/* A server that takes the connection and never answers would hold
 * greet-admin for ever: libpq waits without a limit unless given one.  10 s
 * for each host, before the URL, so that a connect_timeout of its own
 * wins. */
static int connect_db(struct migrate *m)
{
    static const char *const keywords[] = {"connect_timeout", "dbname", "fallback_application_name",
                                           NULL};
    const char *values[] = {"10", m->cfg->database_url, "greet-admin", NULL};
    char masked[512];

    m->conn = PQconnectdbParams(keywords, values, 1 /* expand dbname */);
    if (m->conn != NULL && PQstatus(m->conn) == CONNECTION_OK)
        return 0;
    db_url_mask(m->cfg->database_url, masked, sizeof masked, NULL, 0);
    fprintf(stderr, "%s: database %s: ", name, masked);
    if (m->conn == NULL) {
        fprintf(stderr, "out of memory\n");
    } else {
        const char *message = PQerrorMessage(m->conn);
        size_t len = strlen(message);
        while (len > 0 && message[len - 1] == '\n')
            len--;
        fprintf(stderr, "%.*s\n", (int)len, message);
    }
    return 1;
}

/* One run at a time per database, whichever host it runs on.  A run
 * waits for the lock by trying again every LOCK_POLL seconds, each try a
 * statement of its own, rather than in one pg_advisory_lock() call: a
 * waiting session must not sit in a transaction, or the run holding the
 * lock deadlocks on it as soon as a file runs CREATE INDEX CONCURRENTLY
 * (which waits for every transaction open in the database to end). */
#define LOCK_POLL 0.2
static bool take_lock(struct migrate *m)
{
    bool said = false;

    for (;;) {
        PGresult *res = PQexec(m->conn, "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY ")");
        bool taken;

        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            report(m, res, "taking the migration lock", NULL);
            return false;
        }
        taken = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (taken)
            return true;
        if (signals_stop) {
            fprintf(stderr, "%s: interrupted while waiting for the migration lock\n", name);
            return false;
        }
        if (!said)
            fprintf(stderr, "%s: another migrate run holds the lock; waiting for it to finish\n",
                    name);
        said = true;
        poll(NULL, 0, (int)(LOCK_POLL * 1000));
    }
}

static bool read_applied(struct migrate *m)
{
    PGresult *res;
    int n;

    if (!run_sql(m,
                 "CREATE TABLE IF NOT EXISTS greet_schema_migrations ("
                 " name text PRIMARY KEY,"
                 " checksum text NOT NULL,"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 "creating greet_schema_migrations", NULL))
        return false;
    res = PQexec(m->conn, "SELECT name, checksum, date_trunc('second', applied_at)::text"
                          " FROM greet_schema_migrations");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        report(m, res, "reading greet_schema_migrations", NULL);
        return false;
    }
    n = PQntuples(res);
    m->applied = calloc((size_t)n + 1, sizeof *m->applied);
    m->applied_at = calloc((size_t)n + 1, sizeof *m->applied_at);
    if (m->applied == NULL || m->applied_at == NULL) {
        fprintf(stderr, "%s: out of memory\n", name);
        PQclear(res);
        return false;
    }
    for (int i = 0; i < n; i++) {
        char *row_name = strdup(PQgetvalue(res, i, 0)), *sum = strdup(PQgetvalue(res, i, 1));
        char *at = strdup(PQgetvalue(res, i, 2));
        m->applied[m->n_applied].name = row_name;
        m->applied[m->n_applied].checksum = sum;
        m->applied_at[m->n_applied++] = at;
        if (row_name == NULL || sum == NULL || at == NULL) {
            fprintf(stderr, "%s: out of memory\n", name);
            PQclear(res);
            return false;
        }
    }
    PQclear(res);
    return true;
}

/* SHA-256 of each file, by the server (sha256(), PostgreSQL 11+): no
 * hash of our own to get wrong. */
static bool checksum_files(struct migrate *m)
{
    for (size_t i = 0; i < m->n_files; i++) {
        struct sql_file *f = &m->files[i];
        const char *values[1] = {f->text};
        int lengths[1] = {(int)f->len}, formats[1] = {1 /* binary */};
        PGresult *res = PQexecParams(m->conn, "SELECT encode(sha256($1::bytea), 'hex')", 1, NULL,
                                     values, lengths, formats, 0);

        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            report(m, res, "computing a checksum", NULL);
            return false;
        }
        snprintf(f->checksum, sizeof f->checksum, "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    return true;
}

/* Records f as applied; *at gets when (the caller frees it). */
static bool record(struct migrate *m, const struct sql_file *f, char **at)
{
    const char *values[2] = {f->name, f->checksum};
    PGresult *res = PQexecParams(m->conn,
                                 "INSERT INTO greet_schema_migrations (name, checksum)"
                                 " VALUES ($1, $2)"
                                 " RETURNING date_trunc('second', applied_at)::text",
                                 2, NULL, values, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        report(m, res, "recording a migration", NULL);
        return false;
    }
    *at = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return *at != NULL;
}

/* Runs f statement by statement, outside any transaction block. */
static bool apply_outside(struct migrate *m, const struct sql_file *f, const char *what)
{
    size_t pos = 0, start, end;

    while (migration_next_statement(f->text, f->len, &pos, &start, &end)) {
        char *statement = strndup(f->text + start, end - start);
        PGresult *res;

        if (statement == NULL) {
            fprintf(stderr, "%s: out of memory\n", name);
            return false;
        }
        res = PQexec(m->conn, statement);
        free(statement);
        if (!result_ok(res)) {
            report(m, res, what, NULL);
            return false;
        }
        PQclear(res);
    }
    return true;
}

/* Applies and records f: in one transaction, or (a no-transaction file)
 * statement by statement, then recorded.  *at gets when. */
static bool apply(struct migrate *m, const struct sql_file *f, char **at)
{
    char what[512];

    snprintf(what, sizeof what, "%s/%s", m->dir, f->name);
    if (!migration_in_transaction(f->text, f->len))
        return apply_outside(m, f, what) && record(m, f, at);
    if (!run_sql(m, "BEGIN", "BEGIN", NULL))
        return false;
    if (!run_sql(m, f->text, what, f->text) || !record(m, f, at) ||
        !run_sql(m, "COMMIT", "COMMIT", NULL)) {
        PQclear(PQexec(m->conn, "ROLLBACK"));
        return false;
    }
    return true;
}

static const char *applied_at(const struct migrate *m, const char *file)
{
    for (size_t i = 0; i < m->n_applied; i++)
        if (strcmp(m->applied[i].name, file) == 0)
            return m->applied_at[i];
    return NULL;
}

/* Connected and files read: lock, plan, apply.  Returns the exit status. */
static int migrate_locked(struct migrate *m, size_t *n_new)
{
    struct migration_file *files = calloc(m->n_files, sizeof *files);
    enum migration_action *actions = calloc(m->n_files, sizeof *actions);
    char err[1024];
    int status = 1;

    if (files == NULL || actions == NULL) {
        fprintf(stderr, "%s: out of memory\n", name);
        goto out;
    }
    if (!run_sql(m, "SET client_min_messages TO warning", "SET", NULL) || !take_lock(m) ||
        !read_applied(m) || !checksum_files(m))
        goto out;
    for (size_t i = 0; i < m->n_files; i++) {
        files[i].name = m->files[i].name;
        files[i].checksum = m->files[i].checksum;
    }
    if (!migration_plan(files, m->n_files, m->applied, m->n_applied, actions, err, sizeof err)) {
        fprintf(stderr, "%s: %s/%s; nothing was applied\n", name, m->dir, err);
        goto out;
    }
    for (size_t i = 0; i < m->n_files; i++) {
        const char *values[3] = {m->files[i].name, "already applied",
                                 applied_at(m, m->files[i].name)};
        char *at = NULL;

        if (actions[i] == MIGRATION_APPLY) {
            if (!apply(m, &m->files[i], &at)) {
                fprintf(stderr, "%s: stopped at %s; the files before it are applied\n", name,
                        m->files[i].name);
                goto out;
            }
            values[1] = "applied";
            values[2] = at;
            (*n_new)++;
        }
        rows_add(&m->rows, values);
        free(at);
    }
    status = 0;
out:
    free(files);
    free(actions);
    return status;
}

int cmd_migrate(const struct config *cfg, enum rows_format format)
{
    static const struct rows_column columns[] = {
        {"file", false},
        {"action", false},
        {"applied_at", false},
    };
    struct migrate m;
    size_t n_new = 0;
    int status;
    bool written;

    memset(&m, 0, sizeof m);
    m.cfg = cfg;
    if ((status = find_dir(&m)) != 0)
        return status;
    status = add_files(&m, m.dir, "");
    if (status == 0 && cfg->sample) {
        char *sample = join(m.dir, "/", "sample");
        status = sample && is_dir(sample) ? add_files(&m, sample, "sample/") : 1;
        if (status == 1 && !(sample && is_dir(sample)))
            fprintf(stderr, "%s: --sample: %s/sample is not a directory\n", name, m.dir);
        free(sample);
    }
    if (status == 0 && m.n_files == 0) {
        fprintf(stderr, "%s: no .sql files in %s\n", name, m.dir);
        status = 1;
    }
    if (status == 0)
        status = check_files(&m);
    if (status == 0)
        status = connect_db(&m);
    rows_init(&m.rows, format, stdout, columns, 3);
    if (status == 0) {
        double started = clock_now();
        status = migrate_locked(&m, &n_new);
        if (status == 0)
            fprintf(stderr, "%s: %zu applied, %zu already applied, from %s (%.2f s)\n", name, n_new,
                    m.n_files - n_new, m.dir, clock_now() - started);
    }
    written = rows_finish(&m.rows);
    if (!written) {
        fprintf(stderr, "%s: writing to stdout failed\n", name);
        status = 1;
    }
    rows_free(&m.rows);
    PQfinish(m.conn); /* the advisory lock goes with the session */
    for (size_t i = 0; i < m.n_files; i++) {
        free(m.files[i].name);
        free(m.files[i].text);
    }
    free(m.files);
    for (size_t i = 0; i < m.n_applied; i++) {
        free((char *)m.applied[i].name);
        free((char *)m.applied[i].checksum);
        free(m.applied_at[i]);
    }
    free(m.applied);
    free(m.applied_at);
    return status;
}
