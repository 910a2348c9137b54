#!/bin/sh
# Run once by the postgres image on an empty data directory, as the
# superuser: what sql/ cannot do because it is a secret, the password of
# the worker's role.  The schema, the role's grants and the sample users
# are applied afterwards by the compose file's migrate service
# (greet-admin migrate), which finds the role here and leaves it be.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v password="$GREET_WORKER_PASSWORD" <<'SQL'
SELECT 'CREATE ROLE greet_worker LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'greet_worker') \gexec
ALTER ROLE greet_worker LOGIN PASSWORD :'password';
SQL
