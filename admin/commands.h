/* commands.h - greet-admin's subcommands.  Each prints its rows on stdout
 * (rows.h: a table or JSON lines), one summary line and any error on
 * stderr, and returns the exit status: 0 done, 1 failed or found wrong,
 * 2 bad usage. */
#ifndef GREET_ADMIN_COMMANDS_H
#define GREET_ADMIN_COMMANDS_H

#include "config.h"
#include "link.h"
#include "rows.h"

#include <stdbool.h>

/* Connects (and sets up) for a subcommand called name; false, with the
 * reason on stderr, when the broker cannot be reached. */
bool cmd_connect(struct link *link, const struct config *cfg, const char *name, link_setup_fn setup,
                 void *setup_ctx);

/* status: each queue's depth, consumers, and whether it is declared as the
 * programs declare it; 1 when a queue differs or is missing. */
int cmd_status(const struct config *cfg, enum rows_format format);
int cmd_declare(const struct config *cfg, enum rows_format format);

/* dead list / replay / purge: see cmd_dead.c. */
int cmd_dead_list(const struct config *cfg, enum rows_format format);
int cmd_dead_replay(const struct config *cfg, enum rows_format format);
int cmd_dead_purge(const struct config *cfg);

/* migrate: the .sql files of sql/ into DATABASE_URL; see cmd_migrate.c. */
int cmd_migrate(const struct config *cfg, enum rows_format format);

#endif
