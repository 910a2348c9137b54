#!/usr/bin/env bash
# Least privilege against real servers started here in a temp dir: the
# broker users of deploy/rabbitmq/greet-users.sh (set through a real
# management API) do their jobs -- a worker answers, a producer enqueues
# and waits, a subscriber reads, greet-admin declares and inspects -- and
# each is refused what it has no business doing, tried with another
# client (pika), not ours.  The database: greet_worker reads the two
# preference tables and nothing else, and cannot migrate.
#
#     GREET_BIN=build/asan/bin GREET_TOOLS=build/asan/tests tests/security/run.sh
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${GREET_BIN:-$ROOT/bin}
TOOLS=${GREET_TOOLS:-$ROOT/build/release/tests}
. "$ROOT/scripts/lib/servers.sh"
. "$ROOT/tests/lib/testlib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/greet-security.XXXXXX")
chmod 755 "$WORK" # the servers run as their own users
WORKER_PIDS=()
PY=/usr/bin/python3 # Debian's, with python3-pika
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export GREET_HEARTBEAT=5 GREET_STATS_INTERVAL=0
unset GREET_JOBS_QUEUE GREET_REPLY_QUEUE GREET_DEAD_QUEUE AMQP_URL_FILE DATABASE_URL_FILE

cleanup() {
    stop_pids "${WORKER_PIDS[@]}"
    servers_stop
    finish_workdir "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# starting RabbitMQ (with its management API) and PostgreSQL in $WORK"
SERVERS_DIR=$WORK/servers
servers_prepare_dir "$SERVERS_DIR" || exit 1
MGMT_PORT=$(free_port) || exit 1
RABBIT_PLUGINS=rabbitmq_management
RABBIT_EXTRA_CONF="management.tcp.ip = 127.0.0.1
management.tcp.port = $MGMT_PORT
$(cat "$ROOT/deploy/rabbitmq/greet.conf")"
check "servers start" eval 'pg_start && rabbit_start' || exit 1
check "the management API answers" \
    wait_for 30 curl -sf -u guest:guest "http://127.0.0.1:$MGMT_PORT/api/overview" -o /dev/null
check "schema loaded" servers_load_schema
GUEST_URL=$AMQP_URL
broker=127.0.0.1:$RABBIT_PORT
url() { # url USER: the AMQP URL of a greet-users.sh user
    echo "amqp://$1:pw-$1@$broker/"
}

# ---- the users --------------------------------------------------------------
echo "# greet-users.sh"
printf 'pw-greet-worker\n' >"$WORK/worker.pw"
users() {
    env RABBITMQ_API="http://127.0.0.1:$MGMT_PORT" RABBITMQ_API_USER=guest RABBITMQ_API_PASSWORD=guest \
        GREET_ADMIN_AMQP_PASSWORD=pw-greet-admin GREET_WORKER_AMQP_PASSWORD_FILE="$WORK/worker.pw" \
        GREET_PRODUCER_AMQP_PASSWORD=pw-greet-producer GREET_SUBSCRIBER_AMQP_PASSWORD=pw-greet-subscriber \
        "$@" "$ROOT/deploy/rabbitmq/greet-users.sh"
}
check "greet-users.sh creates the four users" users
check "and again: idempotent" users
users GREET_WORKER_AMQP_PASSWORD=x >"$WORK/both.out" 2>&1
check_eq "a password given twice (VAR and VAR_FILE) is refused" "$?" 1
check "  and the error names both" grep -q 'GREET_WORKER_AMQP_PASSWORD and GREET_WORKER_AMQP_PASSWORD_FILE are both set' "$WORK/both.out"
env RABBITMQ_API="http://127.0.0.1:$MGMT_PORT" RABBITMQ_API_USER=guest RABBITMQ_API_PASSWORD=wrong \
    GREET_ADMIN_AMQP_PASSWORD=x "$ROOT/deploy/rabbitmq/greet-users.sh" >"$WORK/wrongapi.out" 2>&1
check_eq "a wrong API password: exit 1" "$?" 1
check "  saying HTTP 401" grep -q 'HTTP 401' "$WORK/wrongapi.out"
# No password on curl's command line (ps shows it to every local user): a
# curl on the PATH that records its arguments, then runs the real one.
mkdir -p "$WORK/curl-spy"
printf '#!/bin/sh\nprintf "%%s\\n" "$*" >>"%s"\nexec /usr/bin/curl "$@"\n' "$WORK/curl-argv" \
    >"$WORK/curl-spy/curl"
chmod +x "$WORK/curl-spy/curl"
check "greet-users.sh through a curl that records its arguments" users PATH="$WORK/curl-spy:$PATH"
check "  curl was run" test -s "$WORK/curl-argv"
check "  and no password (API login, users' passwords) was on its command line" \
    eval '! grep -e guest -e pw-greet "$WORK/curl-argv"'
# Queue names with characters that mean something in a regular expression
# (RabbitMQ's permissions are regular expressions): in a vhost of their
# own, greet-admin may declare exactly those three queues.
odd_users() {
    users GREET_VHOST=odd 'GREET_JOBS_QUEUE=jobs^1' 'GREET_REPLY_QUEUE=replies$' 'GREET_DEAD_QUEUE=dead.(1)'
}
check "a vhost for odd queue names" \
    curl -sf -u guest:guest -X PUT "http://127.0.0.1:$MGMT_PORT/api/vhosts/odd" -o /dev/null
check "greet-users.sh with queue names jobs^1, replies\$, dead.(1)" odd_users
odd_probe() { # odd_probe USER ACTION QUEUE: what pika gets in the vhost odd
    "$PY" "$ROOT/tests/security/probe.py" "amqp://$1:pw-$1@$broker/odd" "${@:2}" 2>&1
}
for q in 'jobs^1' 'replies$' 'dead.(1)'; do
    check_eq "  greet-admin may declare $q" "$(odd_probe greet-admin declare "$q")" ok
done
for q in 'jobs1' 'replies' 'deadx(1)' 'jobs^1x'; do
    check_match "  but not $q" "$(odd_probe greet-admin declare "$q")" '^refused 403 ACCESS_REFUSED'
done
check_eq "  greet-worker may consume jobs^1" "$(odd_probe greet-worker consume 'jobs^1')" ok

# probe USER ACTION [QUEUE [BODY]]: what pika gets; sets PROBE (its line)
# and RC.
probe() {
    PROBE=$("$PY" "$ROOT/tests/security/probe.py" "$(url "$1")" "${@:2}" 2>&1)
    RC=$?
}
allowed() { # allowed USER ACTION QUEUE
    probe "$@"
    check_eq "$1 may $2 ${3:-}" "$PROBE" ok
}
refused() { # refused USER ACTION QUEUE
    probe "$@"
    check_match "$1 may not $2 ${3:-}" "$PROBE" '^refused 403 ACCESS_REFUSED'
}

# ---- the topology: declared by greet-admin, nobody else may ------------------
echo "# the topology"
"$BIN/greet-worker" --amqp-url "$(url greet-worker)" >"$WORK/early-worker.log" 2>&1 &
early=$!
sleep 3
check "a worker before the topology: still running (it retries)" kill -0 "$early"
stop_pids "$early"
check "  it said the queue is missing and who may declare it" \
    grep -q "greet-admin declare" "$WORK/early-worker.log"
refused greet-worker declare greet.jobs
refused greet-producer declare greet.jobs
refused greet-subscriber declare greet.replies
AMQP_URL=$(url greet-admin) "$BIN/greet-admin" declare >"$WORK/declare.out" 2>&1
check_eq "greet-admin declare as greet-admin: exit 0" "$?" 0
AMQP_URL=$(url greet-admin) "$BIN/greet-admin" status >"$WORK/status.out" 2>&1
check_eq "greet-admin status as greet-admin: the topology matches" "$?" 0

# ---- each user does its job ----------------------------------------------------
echo "# each user does its job"
check "greet-worker consumes as greet-worker" start_worker w1 AMQP_URL="$(url greet-worker)"
AMQP_URL=$(url greet-producer) "$BIN/greet-producer" --count 200 --users 5 --id-prefix lp \
    >"$WORK/produce.out" 2>&1
check_eq "greet-producer enqueues as greet-producer" "$?" 0
AMQP_URL=$(url greet-producer) "$BIN/greet-producer" --count 20 --users 5 --id-prefix lpw --wait \
    >"$WORK/wait.out" 2>&1
check_eq "greet-producer --wait (its own private reply queue) as greet-producer" "$?" 0
AMQP_URL=$(url greet-subscriber) timeout 30 "$BIN/greet-replies" --count 200 >"$WORK/replies.out" 2>"$WORK/replies.err"
check_eq "greet-replies reads the 200 replies as greet-subscriber" "$?" 0
check_eq "  200 of them" "$(grep -c '"status":"ok"' "$WORK/replies.out")" 200
probe greet-producer publish greet.jobs '{"job_id":"lp-bad","user_id":0}'
check "a poison job reaches the dead queue (the worker's dead copy, as greet-worker)" \
    wait_for 15 bash -c "[ \$(AMQP_URL='$GUEST_URL' '$TOOLS/mqtool' depth greet.dead) -ge 1 ]"
AMQP_URL=$(url greet-admin) "$BIN/greet-admin" dead list >"$WORK/dead.out" 2>&1
check_eq "greet-admin dead list as greet-admin" "$?" 0

# ---- and nothing more ------------------------------------------------------------
echo "# what each may not do (tried with pika)"
refused greet-worker delete greet.jobs
refused greet-worker delete greet.replies
refused greet-worker purge greet.replies
refused greet-worker purge greet.dead
refused greet-worker get greet.replies
refused greet-worker consume greet.dead
refused greet-worker declare evil.queue
allowed greet-worker consume greet.jobs

refused greet-producer get greet.jobs
refused greet-producer consume greet.replies
refused greet-producer get greet.dead
refused greet-producer purge greet.jobs
refused greet-producer delete greet.jobs
refused greet-producer declare evil.queue
allowed greet-producer private
# The same permission lets it leave a durable server-named queue behind
# (the broker names it amq.gen-*; a client may not): the policy
# greet-users.sh sets expires it.
probe greet-producer leave
check_match "greet-producer may leave a durable server-named queue behind" "$PROBE" '^ok amq\.gen-'
left=${PROBE#ok }
# queue_policy: the queue as the management API shows it (its figures
# lag the queue by up to its stats interval, 5 s).
queue_policy() {
    curl -sf -u guest:guest "http://127.0.0.1:$MGMT_PORT/api/queues/%2F/$left" |
        jq -c '{durable, policy, expires: .effective_policy_definition.expires}'
}
check "  it is under the policy greet-private-queues (deleted after 10 minutes unused)" \
    wait_for 20 eval '[ "$(queue_policy)" = '"'"'{"durable":true,"policy":"greet-private-queues","expires":600000}'"'"' ]'
refused greet-producer declare amq.gen-named-by-client
allowed greet-producer publish greet.jobs

refused greet-subscriber publish greet.jobs
refused greet-subscriber get greet.jobs
refused greet-subscriber delete greet.replies
allowed greet-subscriber get greet.replies

# What RabbitMQ cannot split (README, "Least privilege"): publishing is
# checked on the exchange, purging is reading.
probe greet-worker publish greet.jobs
check_eq "RabbitMQ cannot split: greet-worker may publish to any queue through the default exchange" "$PROBE" ok
probe greet-subscriber purge greet.replies
check_eq "RabbitMQ cannot split: greet-subscriber may purge the queue it reads" "$PROBE" ok
probe nobody get greet.jobs
check_match "an unknown user is refused at login" "$PROBE" '^refused login'

# deploy/rabbitmq/greet.conf (the broker above runs with it): a message
# of over 1 MiB is refused at publish, so no worker holds prefetch x
# 128 MiB; one under it but over a job's 64 KiB is answered too_large.
probe greet-producer big greet.jobs $((2 << 20))
check_match "a 2 MiB message is refused by the broker (max_message_size)" "$PROBE" \
    '^refused 406 PRECONDITION_FAILED.*message size'
AMQP_URL=$GUEST_URL "$TOOLS/mqtool" purge greet.replies >/dev/null
probe greet-producer big greet.jobs $((1 << 20))
check_eq "a 1 MiB message is taken" "$PROBE" ok
AMQP_URL=$(url greet-subscriber) timeout 30 "$BIN/greet-replies" --count 1 >"$WORK/big.out" 2>/dev/null
check_eq "  and answered too_large" "$(jq -r '"\(.job_id) \(.error)"' "$WORK/big.out")" "big too_large"

# A header only the broker may set, forged: x-delivery-count on a first
# delivery.  A redelivered job runs alone (it may be the one that crashed
# a worker), so a producer that could make every job look redelivered
# would slow every worker to one job at a time (20x, measured).  The
# broker's redelivered flag decides; the forged jobs run as any others.
AMQP_URL=$GUEST_URL "$TOOLS/mqtool" purge greet.replies >/dev/null
suspects_before=$(grep -c 'event=suspect.run' "$WORK/w1.log")
probe greet-producer forge greet.jobs 2000
check_eq "greet-producer publishes 2000 jobs with a forged x-delivery-count" "$PROBE" ok
AMQP_URL=$(url greet-subscriber) timeout 60 "$BIN/greet-replies" --count 2000 >"$WORK/forged.out" 2>/dev/null
check_eq "  all 2000 answered ok" "$(grep -c '"job_id":"forged-[0-9]*","status":"ok"' "$WORK/forged.out")" 2000
check_eq "  none of them run alone as a suspect" \
    "$(($(grep -c 'event=suspect.run' "$WORK/w1.log") - suspects_before))" 0

# ---- the database -----------------------------------------------------------------
echo "# the database: greet_worker reads the two tables and nothing else"
as_worker() { # as_worker SQL: psql as greet_worker; its error in $WORK/sql.err
    psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_URL" -c "$1" >/dev/null 2>"$WORK/sql.err"
}
check "greet_worker may read user_preferences" as_worker "SELECT count(*) FROM user_preferences"
check "greet_worker may read greeting_templates" as_worker "SELECT count(*) FROM greeting_templates"
for sql in "INSERT INTO user_preferences (user_id) VALUES (99999)" \
    "UPDATE user_preferences SET display_name = 'x'" \
    "DELETE FROM user_preferences" \
    "UPDATE greeting_templates SET template = 'x'" \
    "TRUNCATE greeting_templates" \
    "SELECT * FROM greet_schema_migrations" \
    "CREATE TABLE evil (x int)" \
    "CREATE TEMP TABLE evil (x int)" \
    "SELECT rolpassword FROM pg_authid" \
    "ALTER ROLE greet_worker SUPERUSER" \
    "COPY user_preferences FROM PROGRAM 'true'" \
    "SELECT lo_from_bytea(0, 'stored')" \
    "SELECT lo_create(0)" \
    "SELECT lo_creat(-1)"; do
    as_worker "$sql"
    check_eq "greet_worker may not: $sql" "$?" 1
done
# What a role may always do to itself (ALTER ROLE ... SET): greet_worker
# empties its own search_path for every later session.  A worker pins the
# settings it relies on in its connection options, so a new one still
# answers.
stop_pids "${WORKER_PIDS[@]}"
WORKER_PIDS=()
check "greet_worker may set its own role defaults (PostgreSQL allows it)" \
    as_worker "ALTER ROLE greet_worker SET search_path = ''"
check "  a worker started after it still answers" start_worker w-path AMQP_URL="$(url greet-worker)"
AMQP_URL=$(url greet-producer) "$BIN/greet-producer" --count 5 --users 5 --id-prefix path --wait --timeout 30 \
    >"$WORK/path.out" 2>&1
check_eq "  5 jobs answered" "$?" 0
psql -X -q -d greet -c "ALTER ROLE greet_worker RESET search_path" >/dev/null

# docker/initdb.sh (the postgres image runs it once) with a real psql:
# greet_worker gets its password, given through psql's environment.
role_password() {
    psql -X -At -d greet -c "SELECT coalesce(rolpassword, 'none') FROM pg_authid WHERE rolname = 'greet_worker'"
}
POSTGRES_USER=postgres POSTGRES_DB=greet GREET_WORKER_PASSWORD=initdb-pw sh "$ROOT/docker/initdb.sh" \
    >"$WORK/initdb.out" 2>&1
check_eq "docker/initdb.sh with a real psql: exit 0" "$?" 0
check_match "  greet_worker has a password now (SCRAM)" "$(role_password)" '^SCRAM-SHA-256\$'
DATABASE_URL=$DATABASE_URL GREET_SQL_DIR="$ROOT/sql" "$BIN/greet-admin" migrate >"$WORK/migrate.out" 2>&1
check_eq "greet-admin migrate as greet_worker: exit 1" "$?" 1
check "  naming the permission it lacks" grep -qi 'permission denied' "$WORK/migrate.out"
DATABASE_URL=$GREET_ADMIN_DATABASE_URL GREET_SQL_DIR="$ROOT/sql" "$BIN/greet-admin" migrate >"$WORK/migrate-owner.out" 2>&1
check_eq "greet-admin migrate as the owner: exit 0 (nothing new)" "$?" 0

stop_pids "${WORKER_PIDS[@]}"
WORKER_PIDS=()
check "no sanitizer report" no_sanitizer_report "$WORK"/*.log "$WORK"/*.out "$WORK"/*.err
tests_summary
