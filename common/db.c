/* db.c - the database adapter over libpq; see db.h. */
#include "db.h"

#include "buf.h"
#include "clock.h"
#include "log.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOOKUP_STATEMENT "greet_lookup"

/* Preferences and candidate templates in one statement, so they come from
 * one snapshot.  Preference rows come first, ordered by user_id, so the
 * worker finds a user's row by binary search.  Templates: (en, casual)
 * and every template in the users' languages -- a superset of what the
 * greeting rule can pick; the rule itself runs in C (greet.c). */
static const char LOOKUP_SQL[] =
    "WITH prefs AS ("
    "  SELECT user_id, display_name, language, formality"
    "  FROM user_preferences WHERE user_id = ANY($1::bigint[]))"
    " SELECT 'p' AS kind, user_id, display_name, language, formality, NULL AS template FROM prefs"
    " UNION ALL"
    " SELECT 't', NULL, NULL, t.language, t.formality, t.template"
    " FROM greeting_templates t"
    " WHERE (t.language = 'en' AND t.formality = 'casual')"
    "    OR t.language IN (SELECT language FROM prefs)"
    " ORDER BY kind, user_id";

enum { COL_KIND, COL_USER_ID, COL_DISPLAY_NAME, COL_LANGUAGE, COL_FORMALITY, COL_TEMPLATE };

enum phase { PHASE_NONE, PHASE_CONNECT, PHASE_PREPARE, PHASE_IDLE, PHASE_LOOKUP };

struct db_user {
    long long user_id;
    struct greet_prefs prefs;
};

/* The hosts of a multi-host URL (host=a,b / postgresql://a,b/): libpq
 * moves on to the next host only when one fails, and its connect_timeout
 * does not apply to the asynchronous connect, so a host that takes the
 * connection and says nothing would hold every attempt (the caller's
 * timeout restarts it at the first host).  The worker gives libpq one
 * host per attempt instead, the next one after an attempt that did not
 * end connected.  Empty for a single host: the URL is used as it is. */
#define DB_HOSTS_MAX 16

struct db_hosts {
    unsigned n, next;             /* how many; the one to try next */
    char *host, *hostaddr, *port; /* the URL's lists, NULL when absent */
};

struct db {
    char *conninfo;
    char *application_name;
    char options[96];
    struct db_hosts hosts;
    PGconn *conn;
    enum phase phase;
    PostgresPollingStatusType poll_status; /* while connecting */
    bool flushing;                         /* output still queued in libpq */
    double started;
    PGresult *result;
    /* Views into result, rebuilt for every lookup and reused. */
    struct db_user *users;
    size_t n_users, users_cap;
    struct greet_template *templates;
    size_t n_templates, templates_cap;
    struct buf ids;   /* the $1 array literal */
    char sqlstate[6]; /* of the last failed command, "" when none */
};

static unsigned list_length(const char *list)
{
    unsigned n = 1;

    for (const char *p = list; *p; p++)
        n += *p == ',';
    return n;
}

/* Entry i of a comma-separated list, into out. */
static void list_entry(const char *list, unsigned i, char *out, size_t outlen)
{
    const char *start = list, *end;

    while (i-- > 0 && (start = strchr(start, ',')) != NULL)
        start++;
    if (start == NULL) {
        out[0] = '\0';
        return;
    }
    end = strchr(start, ',');
    snprintf(out, outlen, "%.*s", (int)(end ? end - start : (ptrdiff_t)strlen(start)), start);
}

/* The URL's host lists, when it names more than one host.  A URL libpq
 * cannot parse is left to libpq, to say why at connect. */
static void read_hosts(struct db *db)
{
    PQconninfoOption *options = PQconninfoParse(db->conninfo, NULL);
    unsigned n = 0;

    for (PQconninfoOption *o = options; o != NULL && o->keyword != NULL; o++) {
        char **field = strcmp(o->keyword, "host") == 0       ? &db->hosts.host
                       : strcmp(o->keyword, "hostaddr") == 0 ? &db->hosts.hostaddr
                       : strcmp(o->keyword, "port") == 0     ? &db->hosts.port
                                                             : NULL;
        if (field != NULL && o->val != NULL && o->val[0] != '\0') {
            /* An empty entry (the default socket) cannot be forced: the
             * URL is then left as it is. */
            if (strstr(o->val, ",,") != NULL || o->val[0] == ',' ||
                o->val[strlen(o->val) - 1] == ',')
                n = DB_HOSTS_MAX + 1;
            *field = strdup(o->val);
            if (strcmp(o->keyword, "port") != 0 && list_length(o->val) > n)
                n = list_length(o->val);
        }
    }
    PQconninfoFree(options);
    db->hosts.n = n > 1 && n <= DB_HOSTS_MAX ? n : 0;
}

struct db *db_new(const char *conninfo, const char *application_name, double statement_timeout)
{
    struct db *db = calloc(1, sizeof *db);

    if (db == NULL)
        return NULL;
    db->conninfo = strdup(conninfo);
    db->application_name = strdup(application_name);
    if (db->conninfo == NULL || db->application_name == NULL) {
        db_free(db);
        return NULL;
    }
    /* The server cancels a lookup stuck behind a lock; the worker sees an
     * error, keeps the jobs and tries again.  The schema is pinned: a role
     * may change its own defaults (ALTER ROLE ... SET search_path), and one
     * leaked password would otherwise break every worker that reconnects. */
    snprintf(db->options, sizeof db->options, "-c statement_timeout=%ld -c search_path=public",
             (long)(statement_timeout * 1000 + 0.5));
    read_hosts(db);
    return db;
}

static void clear_result(struct db *db)
{
    PQclear(db->result);
    db->result = NULL;
    db->n_users = db->n_templates = 0;
}

void db_disconnect(struct db *db)
{
    /* An attempt that did not end connected: the next host's turn. */
    if (db->hosts.n > 0 && (db->phase == PHASE_CONNECT || db->phase == PHASE_PREPARE))
        db->hosts.next = (db->hosts.next + 1) % db->hosts.n;
    clear_result(db);
    PQfinish(db->conn);
    db->conn = NULL;
    db->phase = PHASE_NONE;
    db->flushing = false;
}

void db_free(struct db *db)
{
    if (db == NULL)
        return;
    db_disconnect(db);
    free(db->hosts.host);
    free(db->hosts.hostaddr);
    free(db->hosts.port);
    free(db->users);
    free(db->templates);
    buf_free(&db->ids);
    free(db->conninfo);
    free(db->application_name);
    free(db);
}

/* libpq messages end with a newline; logs want one line. */
static void set_pq_error(struct db *db, const char *what, char *err, size_t errlen)
{
    const char *msg = db->conn ? PQerrorMessage(db->conn) : "out of memory";
    size_t len;

    snprintf(err, errlen, "%s: %s", what, msg[0] ? msg : "unknown error");
    len = strlen(err);
    while (len > 0 && (err[len - 1] == '\n' || err[len - 1] == ' '))
        err[--len] = '\0';
    for (char *p = err; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

/* What the server says outside an answer (a WARNING, or the FATAL of a
 * backend terminated while idle) reaches the log as one logfmt line, not
 * libpq's raw text on stderr. */
static void log_notice(void *arg, const PGresult *res)
{
    const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *message = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    const char *whole = PQresultErrorMessage(res);
    enum log_level level = LOG_INFO;
    struct log_line line;

    (void)arg;
    if (severity == NULL)
        severity = "NOTICE";
    if (strcmp(severity, "DEBUG") == 0)
        level = LOG_DEBUG;
    else if (strcmp(severity, "NOTICE") != 0 && strcmp(severity, "INFO") != 0 &&
             strcmp(severity, "LOG") != 0)
        level = LOG_WARN; /* WARNING, and ERROR, FATAL, PANIC out of turn */
    if (!log_enabled(level))
        return;
    log_begin(&line, level, "db.notice");
    log_str(&line, "severity", severity);
    if (sqlstate != NULL)
        log_str(&line, "sqlstate", sqlstate);
    if (message != NULL) {
        log_str(&line, "msg", message);
    } else if (whole != NULL) {
        size_t len = strlen(whole);
        while (len > 0 && (whole[len - 1] == '\n' || whole[len - 1] == ' '))
            len--;
        log_strn(&line, "msg", whole, (unsigned)len);
    }
    log_end(&line);
}

bool db_connect(struct db *db, char *err, size_t errlen)
{
    /* Keywords before "dbname" are defaults the URL may override; those
     * after it are forced.  Replies must be valid UTF-8 JSON, so the
     * client encoding is not negotiable. */
    const char *keywords[8] = {"application_name", "options", "dbname", "client_encoding"};
    const char *values[8] = {db->application_name, db->options, db->conninfo, "UTF8"};
    char host[256], hostaddr[64], port[16];
    int n = 4;

    db_disconnect(db);
    if (db->hosts.n > 0) {
        /* One host of the list, forced: after dbname. */
        unsigned i = db->hosts.next;
        if (db->hosts.host != NULL) {
            list_entry(db->hosts.host, i, host, sizeof host);
            keywords[n] = "host", values[n++] = host;
        }
        if (db->hosts.hostaddr != NULL) {
            list_entry(db->hosts.hostaddr, i, hostaddr, sizeof hostaddr);
            keywords[n] = "hostaddr", values[n++] = hostaddr;
        }
        if (db->hosts.port != NULL && list_length(db->hosts.port) > 1) {
            list_entry(db->hosts.port, i, port, sizeof port);
            keywords[n] = "port", values[n++] = port;
        }
    }
    keywords[n] = NULL;
    values[n] = NULL;
    db->conn = PQconnectStartParams(keywords, values, 1 /* expand dbname */);
    if (db->conn == NULL || PQstatus(db->conn) == CONNECTION_BAD) {
        set_pq_error(db, "connect", err, errlen);
        db_disconnect(db);
        return false;
    }
    PQsetNoticeReceiver(db->conn, log_notice, NULL);
    db->phase = PHASE_CONNECT;
    db->poll_status = PGRES_POLLING_WRITING;
    db->started = clock_now();
    return true;
}

enum db_state db_state(const struct db *db)
{
    switch (db->phase) {
    case PHASE_NONE:
        return DB_DOWN;
    case PHASE_CONNECT:
    case PHASE_PREPARE:
        return DB_CONNECTING;
    case PHASE_IDLE:
        return DB_READY;
    case PHASE_LOOKUP:
        return DB_BUSY;
    }
    return DB_DOWN;
}

int db_fd(const struct db *db)
{
    return db->conn ? PQsocket(db->conn) : -1;
}

short db_poll_events(const struct db *db)
{
    if (db->phase == PHASE_CONNECT)
        return db->poll_status == PGRES_POLLING_WRITING ? POLLOUT : POLLIN;
    if (db->phase == PHASE_NONE)
        return 0;
    /* Idle too: a server-side disconnect shows as readable. */
    return (short)(POLLIN | (db->flushing ? POLLOUT : 0));
}

double db_busy_for(const struct db *db, double now)
{
    return (db->phase == PHASE_IDLE || db->phase == PHASE_NONE) ? 0 : now - db->started;
}

static bool flush(struct db *db, char *err, size_t errlen)
{
    int status = PQflush(db->conn);

    if (status < 0) {
        set_pq_error(db, "send", err, errlen);
        return false;
    }
    db->flushing = status == 1;
    return true;
}

static bool grow(void **array, size_t *cap, size_t need, size_t size)
{
    size_t new_cap = *cap ? *cap : 16;
    void *grown;

    if (need <= *cap)
        return true;
    while (new_cap < need)
        new_cap *= 2;
    grown = realloc(*array, new_cap * size);
    if (grown == NULL)
        return false;
    *array = grown;
    *cap = new_cap;
    return true;
}

/* Builds the views over a finished lookup's rows. */
static bool index_result(struct db *db, char *err, size_t errlen)
{
    int rows = PQntuples(db->result);

    db->n_users = db->n_templates = 0;
    if (PQnfields(db->result) != 6) {
        snprintf(err, errlen, "lookup: unexpected result shape");
        return false;
    }
    if (!grow((void **)&db->users, &db->users_cap, (size_t)rows, sizeof *db->users) ||
        !grow((void **)&db->templates, &db->templates_cap, (size_t)rows, sizeof *db->templates)) {
        snprintf(err, errlen, "lookup: out of memory");
        return false;
    }
    for (int row = 0; row < rows; row++) {
        const char *kind = PQgetvalue(db->result, row, COL_KIND);
        if (kind[0] == 'p') {
            struct db_user *u = &db->users[db->n_users++];
            u->user_id = strtoll(PQgetvalue(db->result, row, COL_USER_ID), NULL, 10);
            u->prefs.display_name = PQgetisnull(db->result, row, COL_DISPLAY_NAME)
                                        ? NULL
                                        : PQgetvalue(db->result, row, COL_DISPLAY_NAME);
            u->prefs.language = PQgetvalue(db->result, row, COL_LANGUAGE);
            u->prefs.formality = PQgetvalue(db->result, row, COL_FORMALITY);
        } else {
            struct greet_template *t = &db->templates[db->n_templates++];
            t->language = PQgetvalue(db->result, row, COL_LANGUAGE);
            t->formality = PQgetvalue(db->result, row, COL_FORMALITY);
            t->text = PQgetvalue(db->result, row, COL_TEMPLATE);
        }
    }
    return true;
}

/* Reads every result of the command in flight; false on error.  *done is
 * set once libpq has returned the final NULL. */
static bool collect(struct db *db, bool keep_rows, bool *done, char *err, size_t errlen,
                    const char *what)
{
    *done = false;
    if (!PQconsumeInput(db->conn)) {
        set_pq_error(db, what, err, errlen);
        return false;
    }
    while (!PQisBusy(db->conn)) {
        PGresult *res = PQgetResult(db->conn);
        ExecStatusType status;

        if (res == NULL) {
            *done = true;
            return true;
        }
        status = PQresultStatus(res);
        if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
            const char *msg = PQresultErrorMessage(res);
            const char *sqlstate = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            snprintf(db->sqlstate, sizeof db->sqlstate, "%s", sqlstate ? sqlstate : "");
            snprintf(err, errlen, "%s: %s", what, msg[0] ? msg : PQresStatus(status));
            for (char *p = err; *p; p++)
                if (*p == '\n')
                    *p = ' ';
            PQclear(res);
            /* Drain the rest so the connection can be used again. */
            while ((res = PQgetResult(db->conn)) != NULL)
                PQclear(res);
            return false;
        }
        if (keep_rows && db->result == NULL)
            db->result = res;
        else
            PQclear(res);
    }
    return true;
}

static enum db_step_result step_connect(struct db *db, char *err, size_t errlen)
{
    db->poll_status = PQconnectPoll(db->conn);
    if (db->poll_status == PGRES_POLLING_FAILED) {
        set_pq_error(db, "connect", err, errlen);
        db_disconnect(db);
        return DB_STEP_FAILED;
    }
    if (db->poll_status != PGRES_POLLING_OK)
        return DB_STEP_PENDING;
    if (PQsetnonblocking(db->conn, 1) != 0 ||
        !PQsendPrepare(db->conn, LOOKUP_STATEMENT, LOOKUP_SQL, 1, NULL) ||
        !flush(db, err, errlen)) {
        set_pq_error(db, "prepare", err, errlen);
        db_disconnect(db);
        return DB_STEP_FAILED;
    }
    db->phase = PHASE_PREPARE;
    return DB_STEP_PENDING;
}

enum db_step_result db_step(struct db *db, char *err, size_t errlen)
{
    bool done;

    db->sqlstate[0] = '\0';
    switch (db->phase) {
    case PHASE_NONE:
        return DB_STEP_PENDING;
    case PHASE_CONNECT:
        return step_connect(db, err, errlen);
    case PHASE_PREPARE:
    case PHASE_LOOKUP:
    case PHASE_IDLE:
        break;
    }
    if (db->flushing && !flush(db, err, errlen))
        goto failed;
    if (!collect(db, db->phase == PHASE_LOOKUP, &done, err, errlen,
                 db->phase == PHASE_PREPARE ? "prepare" : "lookup"))
        goto failed;
    if (PQstatus(db->conn) != CONNECTION_OK) {
        set_pq_error(db, "connection", err, errlen);
        goto failed;
    }
    if (!done || db->phase == PHASE_IDLE)
        return DB_STEP_PENDING;
    if (db->phase == PHASE_PREPARE) {
        db->phase = PHASE_IDLE;
        return DB_STEP_READY;
    }
    db->phase = PHASE_IDLE;
    if (db->result == NULL) {
        snprintf(err, errlen, "lookup: no result");
        return DB_STEP_FAILED;
    }
    if (!index_result(db, err, errlen)) {
        clear_result(db);
        return DB_STEP_FAILED;
    }
    return DB_STEP_RESULT;

failed:
    /* A lookup that failed on a healthy connection (statement timeout, a
     * missing table) leaves it usable; anything else drops it. */
    clear_result(db);
    if (db->phase == PHASE_LOOKUP && PQstatus(db->conn) == CONNECTION_OK && !db->flushing &&
        PQtransactionStatus(db->conn) == PQTRANS_IDLE)
        db->phase = PHASE_IDLE;
    else
        db_disconnect(db);
    return DB_STEP_FAILED;
}

bool db_lookup(struct db *db, const long long *user_ids, size_t count, char *err, size_t errlen)
{
    const char *params[1];
    char number[24];

    db->sqlstate[0] = '\0';
    clear_result(db);
    buf_reset(&db->ids);
    if (!buf_append(&db->ids, "{", 1))
        goto oom;
    for (size_t i = 0; i < count; i++) {
        /* Digits backwards into number: cheaper than snprintf per id. */
        unsigned long long value = (unsigned long long)user_ids[i];
        char *end = number + sizeof number, *p = end;
        do {
            *--p = (char)('0' + value % 10);
            value /= 10;
        } while (value > 0);
        if (i > 0)
            *--p = ',';
        if (!buf_append(&db->ids, p, (size_t)(end - p)))
            goto oom;
    }
    if (!buf_append(&db->ids, "}", 1))
        goto oom;
    params[0] = db->ids.data;
    if (!PQsendQueryPrepared(db->conn, LOOKUP_STATEMENT, 1, params, NULL, NULL, 0)) {
        set_pq_error(db, "lookup", err, errlen);
        db_disconnect(db);
        return false;
    }
    db->phase = PHASE_LOOKUP;
    db->started = clock_now();
    if (!flush(db, err, errlen)) {
        db_disconnect(db);
        return false;
    }
    return true;

oom:
    snprintf(err, errlen, "lookup: out of memory");
    return false;
}

const struct greet_prefs *db_result_prefs(struct db *db, long long user_id)
{
    size_t low = 0, high = db->n_users;

    while (low < high) {
        size_t mid = low + (high - low) / 2;
        if (db->users[mid].user_id < user_id)
            low = mid + 1;
        else
            high = mid;
    }
    if (low < db->n_users && db->users[low].user_id == user_id)
        return &db->users[low].prefs;
    return NULL;
}

const struct greet_template *db_result_templates(const struct db *db, size_t *count)
{
    *count = db->n_templates;
    return db->templates;
}

void db_result_clear(struct db *db)
{
    clear_result(db);
}

const char *db_last_sqlstate(const struct db *db)
{
    return db->sqlstate;
}

enum db_error db_last_error(const struct db *db)
{
    const char *code = db->sqlstate;

    /* No SQLSTATE: libpq's own failure (a lost socket, out of memory). */
    if (db->conn == NULL || PQstatus(db->conn) != CONNECTION_OK || code[0] == '\0')
        return DB_ERROR_CONNECTION;
    if (strncmp(code, "08", 2) == 0 || strncmp(code, "57P", 3) == 0)
        return DB_ERROR_CONNECTION; /* connection exceptions, admin shutdown */
    if (strncmp(code, "22", 2) == 0)
        return DB_ERROR_DATA; /* data exception: a row that cannot be sent */
    /* query_canceled (statement_timeout), lock and serialization
     * failures, deadlocks, insufficient resources, operator intervention. */
    if (strcmp(code, "57014") == 0 || strncmp(code, "40", 2) == 0 || strncmp(code, "53", 2) == 0 ||
        strncmp(code, "55", 2) == 0 || strncmp(code, "57", 2) == 0)
        return DB_ERROR_TRANSIENT;
    return DB_ERROR_OTHER;
}
