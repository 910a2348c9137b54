#!/usr/bin/env bash
# The fault suite: the contract's delivery guarantees under the faults that
# break real deployments.  Real RabbitMQ and PostgreSQL servers, real
# workers (the fault-injection sanitizer build), real kills, restarts and
# freezes.  Each scenario drains thousands of jobs, injects its fault
# mid-stream, then tests/tools/historycheck judges the whole history:
# every job answered, duplicates only byte-identical, the dead queue
# holding exactly the poison and crashing jobs, the jobs queue empty.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${GREET_BIN:-$ROOT/build/faults/bin}
TOOLS=${GREET_TOOLS:-$ROOT/build/faults/tests}
. "$ROOT/scripts/lib/servers.sh"
. "$ROOT/tests/lib/testlib.sh"

JOBS=${FAULT_JOBS:-20000}
# FAULT_ONLY="kill9 crash_loop" runs just those scenarios.
want() {
    [ -z "${FAULT_ONLY:-}" ] || [[ " $FAULT_ONLY " == *" $1 "* ]]
}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/greet-faults.XXXXXX")
chmod 755 "$WORK"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Two-second heartbeats: a frozen broker is noticed in four.
export GREET_HEARTBEAT=2 GREET_STATS_INTERVAL=0
SUPERVISORS=()
COLLECTOR=""

cleanup() {
    stop_workers
    [ -n "$COLLECTOR" ] && kill -TERM "$COLLECTOR" 2>/dev/null
    servers_stop
    finish_workdir "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- workers under a supervisor ------------------------------------------

# supervise NAME [VAR=value...]: runs a worker and, like systemd's
# Restart=on-failure, starts it again when it dies, until the scenario
# ends.  The worker's PID is in $SC/NAME.pid, its exit statuses in
# $SC/NAME.exits.
supervise() {
    local name=$1 status
    shift
    while [ ! -e "$SC/stop" ]; do
        env "$@" "$BIN/greet-worker" >>"$SC/$name.log" 2>&1 &
        echo $! >"$SC/$name.pid"
        wait $!
        status=$?
        echo "$status" >>"$SC/$name.exits"
        [ "$status" = 0 ] && break
        sleep 0.1
    done
}

start_workers() { # start_workers COUNT [VAR=value...]
    local count=$1 n
    shift
    for n in $(seq 1 "$count"); do
        supervise "w$n" "$@" &
        SUPERVISORS+=($!)
    done
    for n in $(seq 1 "$count"); do
        wait_for 20 grep -q 'event=consumer.started' "$SC/w$n.log" || return 1
    done
}

worker_pid() {
    cat "$SC/$1.pid"
}

stop_workers() {
    local pid file
    [ -n "${SC:-}" ] && touch "$SC/stop"
    for file in "${SC:-/nonexistent}"/w*.pid; do
        [ -e "$file" ] && kill -TERM "$(cat "$file")" 2>/dev/null
    done
    for pid in "${SUPERVISORS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    SUPERVISORS=()
}

# ---- a scenario -----------------------------------------------------------

# scenario_begin NAME: a fresh directory, empty queues, a collector
# reading every reply (with its properties) into $SC/replies.jsonl.
scenario_begin() {
    SC_NAME=$1
    SC="$WORK/$1"
    mkdir -p "$SC"
    : >"$SC/poison" && : >"$SC/crash"
    "$TOOLS/mqtool" purge greet.jobs greet.replies greet.dead >/dev/null
    "$BIN/greet-replies" --envelope --prefetch 1000 >"$SC/replies.jsonl" 2>"$SC/collector.err" &
    COLLECTOR=$!
    echo "# scenario $SC_NAME"
}

# produce_synthetic COUNT [RATE]: COUNT jobs, ids NAME-1..NAME-COUNT, in
# the background; paced at RATE jobs/s when given, so that the producer
# too is mid-stream when the fault comes (it must ride out broker faults).
produce_synthetic() {
    seq -f "$SC_NAME-%.0f" 1 "$1" >"$SC/sent"
    "$BIN/greet-producer" --count "$1" --users 12 --id-prefix "$SC_NAME" --rate "${2:-0}" \
        >"$SC/producer.out" 2>"$SC/producer.err" &
    PRODUCER=$!
}

unique_replies() {
    grep -o '"message_id":"[^"]*"' "$SC/replies.jsonl" | sort -u | wc -l
}

# wait_replies N SECONDS: until N distinct jobs are answered.
wait_replies() {
    local want=$1 limit=$2 waited=0
    while [ "$(unique_replies)" -lt "$want" ]; do
        sleep 0.2
        waited=$((waited + 1))
        [ $waited -ge $((limit * 5)) ] && return 1
    done
}

# fault_now: marks the moment of the fault; the scenario only counts if
# jobs were still unanswered then (a fault after the drain tests nothing).
fault_now() {
    local answered
    answered=$(unique_replies)
    echo "#   fault injected with $answered of $(wc -l <"$SC/sent") jobs answered"
    check "$SC_NAME: the fault came mid-stream" test "$answered" -lt "$(wc -l <"$SC/sent")"
}

# scenario_end MAX_DUPLICATES: waits for the drain, then judges it.
scenario_end() {
    local max_duplicates=$1 expected jobs_left verdict
    expected=$(($(wc -l <"$SC/sent") - $(wc -l <"$SC/crash")))
    wait_replies "$expected" 120
    wait "$PRODUCER"
    check_eq "$SC_NAME: the producer got every job confirmed" "$?" 0
    sleep 1 # late redeliveries still count as duplicates
    stop_workers
    kill -TERM "$COLLECTOR" && wait "$COLLECTOR"
    COLLECTOR=""
    "$BIN/greet-replies" --reply-queue greet.dead --envelope --prefetch 1000 --timeout 2 >"$SC/dead.jsonl"
    jobs_left=$("$TOOLS/mqtool" depth greet.jobs)
    verdict=$("$TOOLS/historycheck" "$SC_NAME" "$SC/sent" "$SC/poison" "$SC/crash" "$SC/replies.jsonl" \
        "$SC/dead.jsonl" "$jobs_left" "$max_duplicates" 2>"$SC/check.err")
    local status=$?
    echo "$verdict"
    head -n 5 "$SC/check.err"
    check_eq "$SC_NAME: nothing lost, no innocent dead, duplicates only as redeliveries" "$status" 0
    check "$SC_NAME: no sanitizer report" no_sanitizer_report "$SC"/*.log "$SC"/*.err
}

echo "# starting RabbitMQ and PostgreSQL in $WORK"
check "servers start" servers_start "$WORK/servers" || exit 1
check "schema and sample users load" eval 'servers_load_schema && servers_load_samples' || exit 1
# Declare the topology once, as the worker and producer would.
"$BIN/greet-producer" --count 1 --id-prefix warmup >/dev/null 2>&1

# ---- 1. kill -9 a worker holding a full prefetch window --------------------
if want kill9; then
scenario_begin kill9
start_workers 3
produce_synthetic "$JOBS"
wait_replies $((JOBS / 10)) 60
fault_now
kill -KILL "$(worker_pid w1)"
scenario_end -1
check "kill9: the killed worker was restarted by its supervisor" grep -q 137 "$SC/w1.exits"
fi

# ---- 2. broker stopped and started mid-drain --------------------------------
if want broker_restart; then
scenario_begin broker_restart
start_workers 2
produce_synthetic "$JOBS" 5000
wait_replies $((JOBS / 10)) 60
fault_now
rabbit_stop_now
sleep 2
rabbit_start
scenario_end -1
check "broker_restart: workers reconnected (jittered backoff: not all at once)" \
    bash -c "[ \$(cat '$SC'/w*.log | grep -c 'event=broker.connected') -ge 3 ]"
check "broker_restart: the producer rode it out" grep -q 'reconnected' "$SC/producer.err"
fi

# ---- 2b. connections force-closed ------------------------------------------
if want connections_closed; then
scenario_begin connections_closed
start_workers 2
produce_synthetic "$JOBS" 2500
wait_replies $((JOBS / 10)) 60
fault_now
rabbitmqctl_ close_all_connections "fault suite" >/dev/null 2>&1
scenario_end -1
check "connections_closed: workers logged the lost connection" grep -q 'event=broker.lost' "$SC/w1.log"
check "connections_closed: the producer rode it out" grep -q 'reconnected' "$SC/producer.err"
fi

# ---- 3. broker frozen longer than two heartbeats ----------------------------
if want broker_frozen; then
scenario_begin broker_frozen
start_workers 2
produce_synthetic "$JOBS" 5000
wait_replies $((JOBS / 10)) 60
fault_now
kill -STOP "$(rabbit_vm_pid)"
sleep 6
kill -CONT "$(rabbit_vm_pid)"
scenario_end -1
check "broker_frozen: missed heartbeats noticed" grep -q -E 'event=broker.lost error=.*heartbeat' "$SC/w1.log" "$SC/w2.log"
check "broker_frozen: the producer rode it out" grep -q 'reconnected' "$SC/producer.err"
fi

# ---- 4. PostgreSQL stopped for several seconds ------------------------------
if want db_stopped; then
scenario_begin db_stopped
start_workers 2
produce_synthetic "$JOBS"
wait_replies $((JOBS / 10)) 60
fault_now
pg_stop
sleep 5
pg_start
scenario_end 0
check "db_stopped: the worker stopped taking jobs" grep -q 'event=consumer.stopped msg="database unavailable"' "$SC/w1.log"
check "db_stopped: and reconnected" bash -c "[ \$(grep -c 'event=db.connected' '$SC/w1.log') -ge 2 ]"
check "db_stopped: the broker connection was kept" bash -c "! grep -q 'event=broker.lost' '$SC'/w*.log"
fi

# ---- 4b. a backend terminated -----------------------------------------------
if want db_backend_terminated; then
scenario_begin db_backend_terminated
start_workers 2
produce_synthetic "$JOBS"
wait_replies $((JOBS / 10)) 60
fault_now
psql_ -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'greet-worker'" >/dev/null
scenario_end 0
check "db_backend_terminated: workers reconnected" \
    bash -c "[ \$(cat '$SC'/w*.log | grep -c 'event=db.connected') -ge 4 ]"
fi

# ---- 4c. a lock holding every lookup for 10 s, heartbeats of 2 s --------------
if want db_locked; then
scenario_begin db_locked
start_workers 2
produce_synthetic "$JOBS"
wait_replies $((JOBS / 10)) 60
fault_now
psql_ -c "BEGIN; LOCK TABLE user_preferences IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(10); COMMIT;" >/dev/null &
locker=$!
sleep 10
wait "$locker"
scenario_end 0
check "db_locked: lookups timed out and were retried" grep -q 'event=db.lookup_failed' "$SC/w1.log" "$SC/w2.log"
check "db_locked: heartbeats kept the broker connection" bash -c "! grep -q 'event=broker.lost' '$SC'/w*.log"
fi

# ---- 5. SIGTERM under load -----------------------------------------------------
if want sigterm; then
scenario_begin sigterm
start_workers 3
produce_synthetic "$JOBS"
wait_replies $((JOBS / 10)) 60
fault_now
kill -TERM "$(worker_pid w1)"
scenario_end 0
check_eq "sigterm: the worker exited 0" "$(cat "$SC/w1.exits")" 0
check "sigterm: it drained" grep -q 'event=shutdown.start' "$SC/w1.log"
fi

# ---- 5b. a second signal -------------------------------------------------------
# A lock keeps every lookup waiting, so w1 is still draining when the
# second signal comes.
if want second_signal; then
scenario_begin second_signal
start_workers 3 GREET_SHUTDOWN_TIMEOUT=60
produce_synthetic "$JOBS"
wait_replies $((JOBS / 10)) 60
psql_ -c "BEGIN; LOCK TABLE user_preferences IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;" >/dev/null &
locker=$!
sleep 0.5
fault_now
pid=$(worker_pid w1)
kill -TERM "$pid"
sleep 0.5
kill -TERM "$pid"
wait "$locker"
scenario_end -1
check_eq "second_signal: exit at once, status 1 (then restarted)" "$(head -n 1 "$SC/w1.exits")" 1
fi

# ---- 6. a crash-looping job among innocent ones --------------------------------
if want crash_loop; then
scenario_begin crash_loop
seq -f "{\"job_id\":\"crash_loop-%.0f\",\"user_id\":7}" 1 5000 >"$SC/jobs.jsonl"
seq -f "crash_loop-%.0f" 1 5000 >"$SC/sent"
echo "crash_loop-2500" >"$SC/crash"
start_workers 2 GREET_FAULT_CRASH_JOB=crash_loop-2500
"$BIN/greet-producer" --file "$SC/jobs.jsonl" >"$SC/producer.out" 2>"$SC/producer.err" &
PRODUCER=$!
check "crash_loop: the crashing job ends dead by the delivery limit" \
    wait_for 180 bash -c "[ \$('$TOOLS/mqtool' depth greet.dead) -ge 1 ]"
scenario_end -1
check "crash_loop: workers did crash on it, again and again" \
    bash -c "[ \$(cat '$SC'/w*.exits | grep -vc '^0$') -ge 10 ]"
fi

# ---- 7. a mixed poison corpus under load ----------------------------------------
if want poison_mix; then
scenario_begin poison_mix
big=$(printf '%070000d' 0)
awk -v n="$JOBS" -v big="$big" 'BEGIN {
    for (i = 1; i <= n; i++) {
        id = "poison_mix-" i
        if (i % 1000 == 0)     printf "{\"job_id\":\"%s\",\"pad\":\"%s\"}\n", id, big
        else if (i % 50 == 0)  printf "{\"job_id\":\"%s\",\"user_id\":\"x\"}\n", id
        else if (i % 50 == 10) printf "{\"job_id\":\"%s\",\"user_id\":1\n", id
        else if (i % 50 == 20) printf "[\"%s\"]\n", id
        else if (i % 50 == 30) printf "{\"job_id\":\"%s\",\"name\":\"\"}\n", id
        else                   printf "{\"job_id\":\"%s\",\"user_id\":%d}\n", id, 1 + i % 12
    }
}' >"$SC/jobs.jsonl"
seq -f "poison_mix-%.0f" 1 "$JOBS" >"$SC/sent"
awk '{ n = $0; sub(/.*-/, "", n); if (n % 50 == 0 || n % 50 == 10 || n % 50 == 20 || n % 50 == 30) print }' \
    "$SC/sent" >"$SC/poison"
start_workers 2
"$BIN/greet-producer" --file "$SC/jobs.jsonl" --raw --id-prefix poison_mix >"$SC/producer.out" \
    2>"$SC/producer.err" &
PRODUCER=$!
scenario_end 0
check_eq "poison_mix: every poison job got an error reply" \
    "$(grep -c '"status":"error"' "$SC/replies.jsonl")" "$(wc -l <"$SC/poison")"
fi

# ---- the suite catches a broken worker --------------------------------------------
# A worker that acks on arrival instead of after the confirm: with every
# lookup held by a lock, kill -9 loses the jobs it held.  The checker must
# say FAIL; a suite that cannot fail proves nothing.
if want broken_ack_early; then
scenario_begin broken_ack_early
start_workers 1 GREET_FAULT_ACK_EARLY=1
psql_ -c "BEGIN; LOCK TABLE user_preferences IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;" >/dev/null &
locker=$!
sleep 0.3
produce_synthetic 2000
sleep 1
kill -KILL "$(worker_pid w1)"
wait "$locker"
wait_replies 2000 10
wait "$PRODUCER"
stop_workers
kill -TERM "$COLLECTOR" && wait "$COLLECTOR"
COLLECTOR=""
"$BIN/greet-replies" --reply-queue greet.dead --envelope --timeout 1 >"$SC/dead.jsonl"
verdict=$("$TOOLS/historycheck" "$SC_NAME" "$SC/sent" "$SC/poison" "$SC/crash" "$SC/replies.jsonl" \
    "$SC/dead.jsonl" "$("$TOOLS/mqtool" depth greet.jobs)" -1 2>/dev/null)
echo "$verdict"
check_match "broken_ack_early: the checker reports the lost jobs" "$verdict" 'lost [1-9][0-9]*.*FAIL$'
fi

tests_summary
