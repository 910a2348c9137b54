#!/usr/bin/env bash
# greet-admin against real RabbitMQ and PostgreSQL servers started here in
# a temp dir: status on a fresh and on a mismatching topology; dead list
# (filters, and that it leaves the dead queue as it was); dead replay (by
# error, job_id, limit, dry run; a replay killed with kill -9 halfway loses
# nothing; replayed jobs answered by a real greet-worker); dead purge;
# migrate (an empty database, twice, four at once, a changed file).
#
#     GREET_BIN=bin GREET_TOOLS=build/release/tests tests/admin/run.sh
#     GREET_BIN=build/asan/bin GREET_TOOLS=build/asan/tests tests/admin/run.sh
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${GREET_BIN:-$ROOT/bin}
TOOLS=${GREET_TOOLS:-$ROOT/build/release/tests}
. "$ROOT/scripts/lib/servers.sh"
. "$ROOT/tests/lib/testlib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/greet-admin.XXXXXX")
chmod 755 "$WORK" # the servers run as their own users
WORKER_PIDS=()
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export GREET_HEARTBEAT=5 GREET_STATS_INTERVAL=0
unset GREET_SQL_DIR GREET_JOBS_QUEUE GREET_REPLY_QUEUE GREET_DEAD_QUEUE GREET_DELIVERY_LIMIT

cleanup() {
    stop_pids "${WORKER_PIDS[@]}"
    servers_stop
    finish_workdir "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# starting RabbitMQ and PostgreSQL in $WORK"
check "servers start" servers_start "$WORK/servers" || exit 1
ADMIN_DB_URL=$GREET_ADMIN_DATABASE_URL # postgres: may create tables and roles

# adm NAME [VAR=value...] ARGS...: greet-admin ARGS; stdout in
# $WORK/NAME.out, stderr in $WORK/NAME.err, the exit status in RC.
adm() {
    local name=$1 vars=()
    shift
    while [[ $# -gt 0 && $1 == [A-Z]*=* ]]; do
        vars+=("$1")
        shift
    done
    env "${vars[@]}" "$BIN/greet-admin" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
    RC=$?
}

depth() {
    "$TOOLS/mqtool" depth "$1"
}

# depth_is QUEUE OP N: the depth compared with N now (for wait_for, which
# runs it again each time).
depth_is() {
    local messages
    messages=$(depth "$1") && test "$messages" "$2" "$3"
}

# jq_lines NAME FILTER: jq -r FILTER over the JSON lines of NAME.out.
jq_lines() {
    jq -r "$2" "$WORK/$1.out"
}

# dead_by_limit QUEUE COUNT PREFIX: COUNT valid jobs that the broker
# dead-letters into greet.dead by the delivery limit, the way a job that
# crashes every worker ends.  They go to QUEUE, a jobs queue with a limit
# of 1 that no worker reads; two listings of it hand each job back twice.
dead_by_limit() {
    local before
    before=$(depth greet.dead)
    GREET_JOBS_QUEUE=$1 GREET_DELIVERY_LIMIT=1 "$BIN/greet-producer" --count "$2" --id-prefix "$3" \
        >/dev/null 2>>"$WORK/producer.err" || return 1
    GREET_DEAD_QUEUE=$1 "$BIN/greet-admin" dead list >/dev/null 2>>"$WORK/setup.err" || return 1
    GREET_DEAD_QUEUE=$1 "$BIN/greet-admin" dead list >/dev/null 2>>"$WORK/setup.err" || return 1
    wait_for 30 depth_is greet.dead -ge $((before + $2))
}

echo "# usage"
"$BIN/greet-admin" >/dev/null 2>&1
check_eq "no command: exit 2" "$?" 2
adm usage-help --help
check_eq "--help: exit 0" "$RC" 0
check "and lists every command" grep -q 'dead replay' "$WORK/usage-help.out"
check_match "--version" "$("$BIN/greet-admin" --version)" '^greet-admin [0-9]+\.[0-9]+\.[0-9]+$'
adm usage-sub dead replay --help
check "dead replay --help describes it and its options" \
    bash -c "grep -q '^Usage: greet-admin dead replay' '$WORK/usage-sub.out' && grep -q -- '--dry-run' '$WORK/usage-sub.out'"
adm usage-unknown frobnicate
check_eq "an unknown command: exit 2" "$RC" 2
check "and it is named" grep -q "unknown command 'frobnicate'" "$WORK/usage-unknown.err"
adm usage-dead dead
check_eq "dead without list, replay or purge: exit 2" "$RC" 2
adm usage-stray status --yes
check_eq "an option the command does not take: exit 2" "$RC" 2
check "and it is named" grep -q -- '--yes does not apply' "$WORK/usage-stray.err"
adm usage-format status --format csv
check_eq "a bad --format: exit 2" "$RC" 2
adm usage-var GREET_DELIVERY_LIMIT=lots status
check_eq "a bad variable: exit 2" "$RC" 2
check "naming it" grep -q 'GREET_DELIVERY_LIMIT (--delivery-limit)' "$WORK/usage-var.err"

echo "# status on a broker with no queues yet"
adm status-fresh status
check_eq "exit 1: the queues are missing" "$RC" 1
check_eq "each queue is reported missing" "$(jq_lines status-fresh '"\(.queue)=\(.topology)"' | tr '\n' ' ')" \
    "greet.jobs=missing greet.replies=missing greet.dead=missing "
check "status creates nothing" bash -c "! '$TOOLS/mqtool' depth greet.jobs >/dev/null 2>&1"
adm status-down AMQP_URL=amqp://guest:s3cret@127.0.0.1:1/ status
check_eq "broker unreachable: exit 1" "$RC" 1
check "the URL masked, no secret" \
    bash -c "grep -q 'guest:\*\*\*@127.0.0.1:1' '$WORK/status-down.err' && ! grep -q s3cret '$WORK/status-down.err'"

echo "# migrate"
psql -X -q -d postgres -c "CREATE DATABASE greet" >/dev/null
adm mig-empty DATABASE_URL="$ADMIN_DB_URL" migrate --sql-dir "$ROOT/sql" --sample
check_eq "an empty database: exit 0" "$RC" 0
SQL_FILES="$(cd "$ROOT/sql" && LC_ALL=C ls -- *.sql) sample/users.sql"
check_eq "every file applied, in name order, sample data last" \
    "$(jq_lines mig-empty '"\(.file):\(.action)"' | tr '\n' ' ')" \
    "$(for f in $SQL_FILES; do printf '%s:applied ' "$f"; done)"
check_eq "the schema is there: templates, sample users" \
    "$(psql_ -At -c "SELECT (SELECT count(*) FROM greeting_templates) || ' ' || (SELECT count(*) FROM user_preferences)")" \
    "10 12"
check_eq "greet_worker may read it" \
    "$(psql -X -At -U greet_worker -d greet -c "SELECT template FROM greeting_templates WHERE language = 'en' AND formality = 'casual'")" \
    'Hello, {name}!'
expected=$(cd "$ROOT/sql" && sha256sum $SQL_FILES |
    awk '{print $2 "=" $1}' | sort | tr '\n' ' ')
check_eq "greet_schema_migrations records each file with its SHA-256" \
    "$(psql_ -At -c "SELECT name || '=' || checksum FROM greet_schema_migrations ORDER BY name" | tr '\n' ' ')" \
    "$expected"
recorded=$(psql_ -At -c "SELECT name, applied_at FROM greet_schema_migrations ORDER BY name")
adm mig-again DATABASE_URL="$ADMIN_DB_URL" migrate --sql-dir "$ROOT/sql" --sample --format table
check_eq "run again: exit 0" "$RC" 0
check "nothing applied the second time" grep -q "0 applied, $(echo $SQL_FILES | wc -w) already applied" "$WORK/mig-again.err"
check "a table on request" bash -c "head -n 1 '$WORK/mig-again.out' | grep -q '^FILE  *ACTION  *APPLIED_AT$'"
check_eq "the records are untouched" "$(psql_ -At -c "SELECT name, applied_at FROM greet_schema_migrations ORDER BY name")" \
    "$recorded"
if [ ! -d /usr/local/share/greet/sql ]; then
    (cd "$ROOT" && DATABASE_URL="$ADMIN_DB_URL" "$BIN/greet-admin" migrate >/dev/null 2>"$WORK/mig-default.err")
    check_eq "no --sql-dir: ./sql, when nothing is installed" "$?" 0
    check "and says so" grep -q 'from sql ' "$WORK/mig-default.err"
else
    skip "no --sql-dir: ./sql" "/usr/local/share/greet/sql is installed on this machine"
fi
# make install's layout, PREFIX/bin/greet-admin beside PREFIX/share/greet/sql.
mkdir -p "$WORK/prefix/bin" "$WORK/prefix/share/greet" "$WORK/elsewhere"
cp "$BIN/greet-admin" "$WORK/prefix/bin/"
cp -r "$ROOT/sql" "$WORK/prefix/share/greet/sql"
(cd "$WORK/elsewhere" && DATABASE_URL="$ADMIN_DB_URL" "$WORK/prefix/bin/greet-admin" migrate \
    >/dev/null 2>"$WORK/mig-installed.err")
check_eq "installed: no --sql-dir needed" "$?" 0
check "the SQL beside the program is used" grep -q "from $WORK/prefix/bin/../share/greet/sql " "$WORK/mig-installed.err"
adm mig-nodir DATABASE_URL="$ADMIN_DB_URL" GREET_SQL_DIR="$WORK/no-such-dir" migrate
check_eq "GREET_SQL_DIR that is not a directory: exit 2" "$RC" 2
check "naming the variable" grep -q 'GREET_SQL_DIR (--sql-dir)' "$WORK/mig-nodir.err"

mkdir -p "$WORK/sql-changed"
cp "$ROOT"/sql/*.sql "$WORK/sql-changed/"
echo "-- an edit after the fact" >>"$WORK/sql-changed/002_worker_role.sql"
echo "CREATE TABLE must_not_exist (x int);" >"$WORK/sql-changed/900_new.sql"
adm mig-changed DATABASE_URL="$ADMIN_DB_URL" migrate --sql-dir "$WORK/sql-changed"
check_eq "an applied file changed: exit 1" "$RC" 1
check "naming the file" grep -q '002_worker_role.sql changed since it was applied' "$WORK/mig-changed.err"
check_eq "and nothing else is applied (the new file waits)" \
    "$(psql_ -At -c "SELECT to_regclass('must_not_exist') IS NULL AND NOT EXISTS (SELECT FROM greet_schema_migrations WHERE name = '900_new.sql')")" t

mkdir -p "$WORK/sql-role"
cp "$ROOT"/sql/*.sql "$WORK/sql-role/"
echo "CREATE TABLE worker_made (x int);" >"$WORK/sql-role/900_new.sql"
adm mig-role migrate --sql-dir "$WORK/sql-role" # DATABASE_URL: greet_worker
check_eq "the worker's read-only role: exit 1" "$RC" 1
check "and says which role is needed" grep -q 'DATABASE_URL must name a role that may create tables' "$WORK/mig-role.err"

psql -X -q -d postgres -c "CREATE DATABASE greet_fail" >/dev/null
mkdir -p "$WORK/sql-fail"
echo "CREATE TABLE first_ok (x int);" >"$WORK/sql-fail/001_ok.sql"
printf 'CREATE TABLE half_done (x int);\n\nSELECT no_such_column\n  FROM first_ok;\n' >"$WORK/sql-fail/002_bad.sql"
echo "CREATE TABLE never_reached (x int);" >"$WORK/sql-fail/003_later.sql"
fail_url=${ADMIN_DB_URL/\/greet?/\/greet_fail?}
adm mig-fail DATABASE_URL="$fail_url" migrate --sql-dir "$WORK/sql-fail"
check_eq "a failing file: exit 1" "$RC" 1
check "naming the file, the line and the error" \
    grep -q '002_bad.sql, line 3: column "no_such_column" does not exist (SQLSTATE 42703)' "$WORK/mig-fail.err"
check_eq "the file before it applied, the failing one rolled back whole, none after" \
    "$(psql -X -At -d greet_fail -c "SELECT string_agg(name, ',' ORDER BY name) || ' ' || (to_regclass('half_done') IS NULL) || ' ' || (to_regclass('never_reached') IS NULL) FROM greet_schema_migrations")" \
    "001_ok.sql true true"
printf 'SELECT 1;\n\\set ON_ERROR_STOP 1\n' >"$WORK/sql-fail/002_bad.sql"
adm mig-psql DATABASE_URL="$fail_url" migrate --sql-dir "$WORK/sql-fail"
check_eq "a psql meta-command: exit 1" "$RC" 1
check "naming the file and line" grep -q '002_bad.sql:2: a psql meta-command' "$WORK/mig-psql.err"
adm mig-secret DATABASE_URL="postgresql://greet:s3cret@127.0.0.1:1/greet" migrate --sql-dir "$ROOT/sql"
check_eq "database unreachable: exit 1" "$RC" 1
check "the URL masked, no secret" \
    bash -c "grep -q 'password=\*\*\*' '$WORK/mig-secret.err' && ! grep -q s3cret '$WORK/mig-secret.err'"
# A server that takes the connection and never answers: libpq alone would
# wait for ever; greet-admin gives each host 10 s (a URL's own
# connect_timeout wins).
stall_port=$(free_port)
start_stall_server "$stall_port"
started=$SECONDS
DATABASE_URL="postgresql://greet@127.0.0.1:$stall_port/greet" timeout 60 "$BIN/greet-admin" migrate \
    --sql-dir "$ROOT/sql" >/dev/null 2>"$WORK/mig-stall.err"
check_eq "a database that takes the connection and never answers: exit 1 (not ended by timeout 60)" "$?" 1
check "  within 20 s (10 s per host)" [ $((SECONDS - started)) -le 20 ]
check "  saying it timed out" grep -q 'timeout expired' "$WORK/mig-stall.err"
started=$SECONDS
DATABASE_URL="postgresql://greet@127.0.0.1:$stall_port/greet?connect_timeout=2" timeout 60 \
    "$BIN/greet-admin" migrate --sql-dir "$ROOT/sql" >/dev/null 2>&1
check "  the URL's own connect_timeout=2 wins (done within 6 s)" [ $((SECONDS - started)) -le 6 ]
stop_pids "$STALL_PID"

# Four runs at once on an empty database.  001 holds the lock a while, so
# the others must wait; 003 cannot run in a transaction (CREATE INDEX
# CONCURRENTLY) and says so.  applied_log counts how often each file ran.
psql -X -q -d postgres -c "CREATE DATABASE greet_many" >/dev/null
mkdir -p "$WORK/sql-many"
cat >"$WORK/sql-many/001_log.sql" <<'SQL'
CREATE TABLE applied_log (file text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp());
INSERT INTO applied_log (file) VALUES ('001');
SELECT pg_sleep(1);
SQL
echo "INSERT INTO applied_log (file) VALUES ('002');" >"$WORK/sql-many/002_more.sql"
cat >"$WORK/sql-many/003_index.sql" <<'SQL'
-- Without a transaction: CREATE INDEX CONCURRENTLY refuses one.
-- greet:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS applied_log_file ON applied_log (file);
INSERT INTO applied_log (file) VALUES ('003');
SQL
many_url=${ADMIN_DB_URL/\/greet?/\/greet_many?}
pids=()
for i in 1 2 3 4; do
    DATABASE_URL="$many_url" "$BIN/greet-admin" migrate --sql-dir "$WORK/sql-many" \
        >"$WORK/mig-many-$i.out" 2>"$WORK/mig-many-$i.err" &
    pids+=($!)
done
statuses=""
for pid in "${pids[@]}"; do
    wait "$pid"
    statuses+="$? "
done
check_eq "four runs at once: every one exits 0" "$statuses" "0 0 0 0 "
check_eq "each file applied exactly once" \
    "$(psql -X -At -d greet_many -c "SELECT string_agg(file, ',' ORDER BY file) FROM applied_log")" "001,002,003"
check_eq "and recorded once" "$(psql -X -At -d greet_many -c "SELECT count(*) FROM greet_schema_migrations")" 3
check_eq "one run applied them, three found them applied (already applied, applied)" \
    "$(cat "$WORK"/mig-many-*.out | jq -r .action | sort | uniq -c | awk '{print $1}' | tr '\n' ' ')" "9 3 "
check "the runs took turns on the lock" grep -q 'another migrate run holds the lock' "$WORK"/mig-many-*.err
check_eq "the no-transaction file built its index" \
    "$(psql -X -At -d greet_many -c "SELECT indisvalid FROM pg_index WHERE indexrelid = 'applied_log_file'::regclass")" t

echo "# status once the worker has declared the topology"
check "a worker starts" start_worker w1
adm status-ok status
check_eq "exit 0: the topology matches" "$RC" 0
check_eq "every queue ok, the worker consuming the jobs" \
    "$(jq_lines status-ok '"\(.queue)=\(.topology)/\(.consumers)"' | tr '\n' ' ')" \
    "greet.jobs=ok/1 greet.replies=ok/0 greet.dead=ok/0 "
check "messages are numbers" bash -c "jq -e 'select(.queue == \"greet.dead\") | .messages == 0' '$WORK/status-ok.out'"
adm status-table status --format table
check "a table on request" bash -c "head -n 1 '$WORK/status-table.out' | grep -q '^QUEUE  *ROLE  *MESSAGES  *CONSUMERS  *TOPOLOGY  *REASON$'"
adm status-limit GREET_DELIVERY_LIMIT=5 status
check_eq "a jobs queue with another delivery limit: exit 1" "$RC" 1
check_match "the jobs queue differs, and why" \
    "$(jq_lines status-limit 'select(.queue == "greet.jobs") | "\(.topology): \(.reason)"')" \
    "^differs: inequivalent arg 'x-delivery-limit' .*received '5' but current is '20'"
check "the summary names it" grep -q 'greet.jobs differs' "$WORK/status-limit.err"
"$TOOLS/mqtool" declare-refusing test.classic
adm status-classic GREET_DEAD_QUEUE=test.classic status
check_eq "a classic queue where a quorum one belongs: exit 1" "$RC" 1
check_match "reported as differing" "$(jq_lines status-classic 'select(.queue == "test.classic") | "\(.topology): \(.reason)"')" \
    "^differs: inequivalent arg"
adm status-missing GREET_REPLY_QUEUE=test.nowhere status
check_eq "a missing reply queue: exit 1" "$RC" 1
check_eq "reported missing, the others ok" "$(jq_lines status-missing .topology | tr '\n' ' ')" "ok missing ok "
check "and still not created" bash -c "! '$TOOLS/mqtool' depth test.nowhere >/dev/null 2>&1"
adm list-missing GREET_DEAD_QUEUE=test.nowhere dead list
check_eq "dead list of a dead queue that does not exist: exit 1" "$RC" 1
check "and says so" grep -q "no queue 'test.nowhere'" "$WORK/list-missing.err"

echo "# dead list"
# Three poison jobs (the worker's dead copies) and three the broker
# dead-lettered by the delivery limit.
printf '%s\n' 'this is not json' '{"job_id":"p-seven","user_id":"seven"}' '{"job_id":"p-zero","user_id":0}' |
    "$BIN/greet-producer" --file - --raw --id-prefix raw >/dev/null 2>>"$WORK/producer.err"
check "three poison jobs are dead" wait_for 20 depth_is greet.dead -eq 3
check "three jobs dead by the delivery limit" dead_by_limit test.crashy 3 crash
adm list-1 dead list
check_eq "six dead jobs listed" "$(wc -l <"$WORK/list-1.out")" 6
check_eq "how each died" "$(jq_lines list-1 '"\(.job_id):\(.died):\(.error)"' | sort | tr '\n' ' ')" \
    "crash-1:delivery_limit:null crash-2:delivery_limit:null crash-3:delivery_limit:null p-seven:poison:invalid_job p-zero:poison:invalid_job raw-1:poison:invalid_json "
check_eq "with the worker's x-greet-detail" "$(jq_lines list-1 'select(.job_id == "p-zero") | .detail')" \
    "user_id must be an integer >= 1"
adm list-2 dead list
check_eq "listed again: the same jobs in the same order" "$(jq_lines list-2 .job_id)" "$(jq_lines list-1 .job_id)"
check_eq "each counted once more by the queue (x-delivery-count), and that is all" \
    "$(paste -d ' ' <(jq_lines list-1 .delivery_count) <(jq_lines list-2 .delivery_count) | awk '$2 != $1 + 1' | wc -l)" 0
check_eq "nothing moved: 6 dead, 0 jobs" "$(depth greet.dead) $(depth greet.jobs)" "6 0"
adm list-error dead list --error invalid_job
check_eq "--error invalid_job" "$(jq_lines list-error .job_id | sort | tr '\n' ' ')" "p-seven p-zero "
adm list-poison dead list --error poison
check_eq "--error poison: every worker's dead copy" "$(wc -l <"$WORK/list-poison.out")" 3
adm list-limit-err dead list --error delivery_limit
check_eq "--error delivery_limit" "$(jq_lines list-limit-err .job_id | tr '\n' ' ')" "crash-1 crash-2 crash-3 "
adm list-none dead list --error no_such_error
check_eq "--error that matches nothing: exit 0, no rows" "$RC $(wc -l <"$WORK/list-none.out")" "0 0"
check "and says so" grep -q '0 listed of 6 dead jobs in greet.dead' "$WORK/list-none.err"
adm list-id dead list --job-id crash-2
check_eq "--job-id" "$(jq_lines list-id .job_id)" crash-2
adm list-limit dead list --limit 2
check_eq "--limit 2: the first two" "$(jq_lines list-limit .job_id | tr '\n' ' ')" "$(jq_lines list-1 .job_id | head -n 2 | tr '\n' ' ')"
adm list-3 dead list
check_eq "after --limit too, the queue keeps its order" "$(jq_lines list-3 .job_id)" "$(jq_lines list-1 .job_id)"
adm list-table dead list --format table
check "a table on request" bash -c "head -n 1 '$WORK/list-table.out' | grep -q '^JOB_ID  *DIED  *ERROR  *DETAIL  *DELIVERY_COUNT$'"
# Each listing counts as a delivery.  RabbitMQ 4's default delivery limit
# (20) would drop a dead job listed past it; greet-admin refreshes a job
# listed 10 times instead.  Listed 15 more times, none is lost, none
# counted past 10.
: >"$WORK/list-many.counts"
for i in $(seq 15); do
    "$BIN/greet-admin" dead list >"$WORK/list-many.out" 2>>"$WORK/list-many.err"
    jq -r .delivery_count "$WORK/list-many.out" >>"$WORK/list-many.counts"
done
check_eq "listed 15 more times: the same six jobs are dead" \
    "$(jq_lines list-many .job_id | sort | tr '\n' ' ')" "$(jq_lines list-1 .job_id | sort | tr '\n' ' ')"
check_eq "no delivery count ever past 10" "$(sort -n "$WORK/list-many.counts" | tail -n 1)" 10
check "the jobs listed 10 times were refreshed" grep -q 'listed 10 times were refreshed' "$WORK/list-many.err"
check_eq "still nothing in the jobs queue" "$(depth greet.jobs)" 0

echo "# dead replay"
"$BIN/greet-replies" --timeout 0.5 >/dev/null 2>&1 # drain the poison jobs' error replies
adm replay-dry dead replay --error delivery_limit --dry-run
check_eq "--dry-run: exit 0" "$RC" 0
check_eq "lists what it would replay" "$(jq_lines replay-dry '"\(.job_id):\(.action)"' | tr '\n' ' ')" \
    "crash-1:would replay crash-2:would replay crash-3:would replay "
check "and says nothing moved" grep -q '3 would be replayed, 3 skipped; nothing moved' "$WORK/replay-dry.err"
check_eq "nothing moved" "$(depth greet.dead) $(depth greet.jobs)" "6 0"
adm replay-id dead replay --job-id crash-2
check_eq "--job-id crash-2: exit 0" "$RC" 0
check_eq "replays that job alone" "$(jq_lines replay-id '"\(.job_id):\(.action)"')" "crash-2:replayed"
check "and counts the rest as skipped" grep -q '1 replayed to greet.jobs, 5 skipped (left in greet.dead)' "$WORK/replay-id.err"
"$BIN/greet-replies" --count 1 --timeout 20 >"$WORK/replay-id.replies" 2>/dev/null
check_eq "a worker answers it" "$(jq -c . "$WORK/replay-id.replies")" \
    '{"job_id":"crash-2","status":"ok","message":"Good day, Grace.","language":"en"}'
check_eq "5 dead left" "$(depth greet.dead)" 5
adm replay-limit dead replay --error delivery_limit --limit 1
check_eq "--limit 1: one of the two left" "$(jq_lines replay-limit .job_id)" crash-1
adm replay-rest dead replay --error delivery_limit
check_eq "and then the last" "$(jq_lines replay-rest .job_id)" crash-3
"$BIN/greet-replies" --count 2 --timeout 20 >"$WORK/replay-rest.replies" 2>/dev/null
check_eq "answered ok" "$(jq -r '"\(.job_id):\(.status)"' "$WORK/replay-rest.replies" | sort | tr '\n' ' ')" \
    "crash-1:ok crash-3:ok "
check "replayed jobs come as fresh deliveries, not suspects" bash -c "! grep -q 'event=suspect.run' '$WORK/w1.log'"
check_eq "the poison jobs stayed dead" "$(depth greet.dead)" 3
# A replay keeps the body and properties and leaves the death headers:
# replayed to a queue no worker reads, then looked at there.
adm replay-raw dead list --error invalid_json
raw_id=$(jq_lines replay-raw .job_id)
adm replay-copy GREET_JOBS_QUEUE=test.replayed dead replay --error invalid_json
check_eq "replayed elsewhere (GREET_JOBS_QUEUE)" "$(jq_lines replay-copy .action)" replayed
"$BIN/greet-replies" --reply-queue test.replayed --envelope --count 1 --timeout 10 >"$WORK/replay-copy.env" 2>/dev/null
check_eq "the same body and message_id, no x-greet-* headers" \
    "$(jq -c '[.body, .message_id, .headers]' "$WORK/replay-copy.env")" "[\"this is not json\",\"$raw_id\",{}]"
dead_by_limit test.crashy 1 once
adm replay-death GREET_JOBS_QUEUE=test.replayed dead replay --job-id once-1
adm replay-death-seen GREET_JOBS_QUEUE=test.other GREET_DEAD_QUEUE=test.replayed dead list
check_eq "a job dead by the delivery limit leaves x-death and x-first-death-* behind" \
    "$(jq_lines replay-death-seen '"\(.job_id):\(.died)"')" "once-1:unknown"
adm replay-poison dead replay --error invalid_job
check_eq "poison replayed to the jobs queue" "$(jq_lines replay-poison .action | tr '\n' ' ')" "replayed replayed "
check "dies again, with the same error" \
    wait_for 20 bash -c "[ \"\$('$BIN/greet-admin' dead list --error invalid_job 2>/dev/null | wc -l)\" = 2 ]"

echo "# a replay killed with kill -9 halfway loses nothing"
stop_pids "${WORKER_PIDS[@]}"
WORKER_PIDS=()
"$TOOLS/mqtool" purge greet.dead greet.jobs greet.replies
check "1500 jobs dead by the delivery limit" dead_by_limit test.bulk 1500 bulk
# In a subshell of its own, whose stderr takes the shell's "Killed".
(
    "$BIN/greet-admin" dead replay >"$WORK/kill.out" 2>"$WORK/kill.err" &
    echo $! >"$WORK/kill.pid"
    wait $!
    echo $? >"$WORK/kill.status"
) 2>/dev/null &
watcher=$!
check "the replay gets going" wait_for 60 depth_is greet.jobs -ge 300
kill -KILL "$(cat "$WORK/kill.pid")"
wait "$watcher"
check_eq "killed" "$(cat "$WORK/kill.status")" 137
moved=$(depth greet.jobs)
left=$(depth greet.dead)
check "it was halfway: jobs queued again and jobs still dead" test "$moved" -gt 0 -a "$left" -gt 0
check_match "every job is dead or queued again, at most one of them both ($moved + $left)" \
    "$((moved + left))" '^150[01]$'
adm kill-rest dead replay
check_eq "the rest replayed" "$RC $(depth greet.dead)" "0 0"
total=$(depth greet.jobs)
check "a worker starts" start_worker w2
check "and answers them all" wait_for 60 depth_is greet.jobs -eq 0
"$BIN/greet-replies" --count "$total" --timeout 30 >"$WORK/kill.replies" 2>/dev/null
check_eq "every one of the 1500 jobs answered ok" \
    "$(jq -r 'select(.status == "ok") | .job_id' "$WORK/kill.replies" | sort -u | grep -c '^bulk-')" 1500

echo "# dead purge"
dead_by_limit test.crashy 2 purge
adm purge-no dead purge
check_eq "without --yes: exit 2" "$RC" 2
check "and says how many would go" grep -q 'this would delete the 2 dead job(s) in greet.dead' "$WORK/purge-no.err"
check_eq "nothing deleted" "$(depth greet.dead)" 2
adm purge-yes dead purge --yes
check_eq "--yes: exit 0" "$RC" 0
check "says how many went" grep -q 'deleted 2 dead job(s) from greet.dead' "$WORK/purge-yes.err"
check_eq "the dead queue is empty" "$(depth greet.dead)" 0
adm purge-limit dead purge --yes --limit 1
check_eq "purge takes no filter: exit 2" "$RC" 2

echo "# sanitizers"
stop_pids "${WORKER_PIDS[@]}"
WORKER_PIDS=()
check "no sanitizer report in any log" no_sanitizer_report "$WORK"/*.log "$WORK"/*.err

tests_summary
