#!/bin/sh
# Run once by the postgres image on an empty data directory, as the
# superuser: what sql/ cannot do because it is a secret, the password of
# the worker's role.  The schema, the role's grants and the sample users
# are applied afterwards by the compose file's migrate service
# (greet-admin migrate), which finds the role here and leaves it be.
#
# The password from GREET_WORKER_PASSWORD, or from the file named by
# GREET_WORKER_PASSWORD_FILE (a compose secret; its first line): one of them.
set -eu
if [ -n "${GREET_WORKER_PASSWORD:-}" ] && [ -n "${GREET_WORKER_PASSWORD_FILE:-}" ]; then
    echo "initdb.sh: GREET_WORKER_PASSWORD and GREET_WORKER_PASSWORD_FILE are both set; set one" >&2
    exit 1
elif [ -n "${GREET_WORKER_PASSWORD_FILE:-}" ]; then
    if [ ! -r "$GREET_WORKER_PASSWORD_FILE" ]; then
        echo "initdb.sh: GREET_WORKER_PASSWORD_FILE: cannot read $GREET_WORKER_PASSWORD_FILE" >&2
        exit 1
    fi
    password=$(head -n 1 "$GREET_WORKER_PASSWORD_FILE")
elif [ -n "${GREET_WORKER_PASSWORD:-}" ]; then
    password=$GREET_WORKER_PASSWORD
else
    echo "initdb.sh: set GREET_WORKER_PASSWORD or GREET_WORKER_PASSWORD_FILE (greet_worker's password)" >&2
    exit 1
fi
if [ -z "$password" ]; then
    echo "initdb.sh: GREET_WORKER_PASSWORD_FILE: $GREET_WORKER_PASSWORD_FILE is empty" >&2
    exit 1
fi
# The password reaches psql in its environment, not on its command line,
# which any local user can read (ps); \getenv is psql 15's.
GREET_ROLE_PASSWORD=$password psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" \
    --dbname "$POSTGRES_DB" <<'SQL'
SELECT 'CREATE ROLE greet_worker LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'greet_worker') \gexec
\getenv password GREET_ROLE_PASSWORD
ALTER ROLE greet_worker LOGIN PASSWORD :'password';
SQL
