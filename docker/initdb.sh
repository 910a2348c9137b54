#!/bin/sh
# Run once by the postgres image on an empty data directory: the schema
# (sql/*.sql in name order), the sample users, and the worker's password.
set -eu
run_psql() {
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" "$@"
}
for file in /greet-sql/*.sql; do
    run_psql -f "$file"
done
if [ "${GREET_SAMPLE_DATA:-1}" = 1 ]; then
    for file in /greet-sql/sample/*.sql; do
        run_psql -f "$file"
    done
fi
run_psql -v password="$GREET_WORKER_PASSWORD" -c "ALTER ROLE greet_worker PASSWORD :'password'"
