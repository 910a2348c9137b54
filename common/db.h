/* db.h - the database adapter: libpq's asynchronous API, driven from the
 * caller's poll(2) loop so the broker connection keeps its heartbeats
 * while PostgreSQL is slow, stalled or away.
 *
 * One lookup reads what a whole batch of jobs needs in one round trip:
 * the user_preferences rows of its user_ids, and the greeting_templates
 * rows the greeting rule may fall back on. */
#ifndef GREET_DB_H
#define GREET_DB_H

#include "greet.h"

#include <stdbool.h>
#include <stddef.h>

enum db_state {
    DB_DOWN,       /* not connected: call db_connect() */
    DB_CONNECTING, /* connecting or preparing; poll and db_step() */
    DB_READY,      /* idle: db_lookup() may be called */
    DB_BUSY,       /* a lookup is in flight; poll and db_step() */
};

enum db_step_result {
    DB_STEP_PENDING, /* nothing finished yet */
    DB_STEP_READY,   /* the connection became ready */
    DB_STEP_RESULT,  /* the lookup finished: read it with db_result_*() */
    DB_STEP_FAILED,  /* connection or lookup failed (transient): err says why */
};

/* Why the last DB_STEP_FAILED (or db_lookup) failed, from its SQLSTATE. */
enum db_error {
    DB_ERROR_CONNECTION, /* the connection is gone or was never made (class 08, 57P) */
    DB_ERROR_TRANSIENT,  /* a timeout, a lock, a resource limit: try again later */
    DB_ERROR_DATA,       /* the rows themselves cannot be read (class 22) */
    DB_ERROR_OTHER,      /* refused on a healthy connection for another reason */
};

struct db;

struct db *db_new(const char *conninfo, const char *application_name, double statement_timeout);
void db_free(struct db *db);

bool db_connect(struct db *db, char *err, size_t errlen);
void db_disconnect(struct db *db);
enum db_state db_state(const struct db *db);

/* For poll(2): the socket and the events it waits for (POLLIN/POLLOUT). */
int db_fd(const struct db *db);
short db_poll_events(const struct db *db);
/* Seconds since the current connect or lookup started (0 when idle). */
double db_busy_for(const struct db *db, double now);

/* Advances the connection or the lookup in flight; never blocks. */
enum db_step_result db_step(struct db *db, char *err, size_t errlen);

/* The kind of the last failure, and its SQLSTATE ("" when none came). */
enum db_error db_last_error(const struct db *db);
const char *db_last_sqlstate(const struct db *db);

/* Starts the lookup of user_ids[0..count) (duplicates are fine). */
bool db_lookup(struct db *db, const long long *user_ids, size_t count, char *err, size_t errlen);

/* The finished lookup, valid until db_result_clear(). */
const struct greet_prefs *db_result_prefs(struct db *db, long long user_id);
const struct greet_template *db_result_templates(const struct db *db, size_t *count);
void db_result_clear(struct db *db);

#endif
