#!/usr/bin/env bash
# The fault suite: the contract's delivery guarantees under the faults that
# break real deployments.  Real RabbitMQ and PostgreSQL servers, real
# workers (the fault-injection sanitizer build), real kills, restarts and
# freezes.  Each scenario drains thousands of jobs, injects its fault
# mid-stream, then tests/tools/historycheck judges the whole history (the
# replies stay queued until the end, then are read at once):
# every job answered, duplicates only byte-identical, the dead queue
# holding exactly the poison and crashing jobs, the jobs queue empty.
#
# Losing nothing is not enough: a worker that comes back from a fault
# draining at a twentieth of its pace, or reconnecting in a loop, fails
# too.  The broker and database scenarios queue a backlog before any
# worker starts, so the workers' own pace sets the rate on both sides of
# the fault, and compare the drain rate after recovery with the rate
# before it, in the same run (check_drain_rate); each scenario counts its
# reconnects (check_reconnects).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${GREET_BIN:-$ROOT/build/faults/bin}
TOOLS=${GREET_TOOLS:-$ROOT/build/faults/tests}
. "$ROOT/scripts/lib/servers.sh"
. "$ROOT/tests/lib/testlib.sh"
. "$ROOT/tests/lib/scenario.sh"

JOBS=${FAULT_JOBS:-20000}
# The backlog of the scenarios that measure rates: large enough that each
# window holds a second or more of draining, on both sides of the fault,
# for a worker at 30,000 jobs/s (workers slowed by a fault get help with
# the rest once their rate is measured: help_slow_drain).
BACKLOG=${FAULT_BACKLOG:-150000}
# The fault comes once this many are answered.
FAULT_AT=$((BACKLOG * 35 / 100))
# The least drain rate after recovery, as a fraction of the rate before.
RATE_MIN=${FAULT_RATE_MIN:-0.7}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/greet-faults.XXXXXX")
chmod 755 "$WORK"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Two-second heartbeats: a frozen broker is noticed in four.
export GREET_HEARTBEAT=2 GREET_STATS_INTERVAL=${GREET_STATS_INTERVAL:-0}
# Times and rates are printed and parsed with a decimal point.
export LC_NUMERIC=C
CLOSER=""

cleanup() {
    stop_workers
    sampler_stop
    [ -n "$CLOSER" ] && touch "$SC/close-now" # its CLI ends with the broker
    servers_stop
    finish_workdir "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- connections closed by the broker ------------------------------------

# arm_close_all: a rabbitmqctl eval, started now, that has the broker close
# every client connection the moment fire_close_all is called.  The CLI's
# own start (an Erlang VM: seconds of CPU on two cores) is over before the
# workers start: the fault lands when chosen, and takes no CPU from the
# rates measured around it.
arm_close_all() {
    rm -f "$SC/close-now" "$SC/close-armed"
    rabbitmqctl_ timeout 330 eval "file:write_file(\"$SC/close-armed\", <<>>),
        Wait = fun W(0) -> timeout;
                   W(N) -> case filelib:is_regular(\"$SC/close-now\") of
                               true -> rabbit_networking:close_all_connections(\"fault suite\");
                               false -> timer:sleep(5), W(N - 1)
                           end
               end,
        Wait(60000)." >"$SC/close-all.out" 2>&1 &
    CLOSER=$!
    wait_for 60 test -e "$SC/close-armed"
}

# fire_close_all: every connection closed now (see arm_close_all).
fire_close_all() {
    touch "$SC/close-now"
    wait "$CLOSER"
    CLOSER=""
}

echo "# starting RabbitMQ and PostgreSQL in $WORK"
check "servers start" servers_start "$WORK/servers" || exit 1
check "schema and sample users load" eval 'servers_load_schema && servers_load_samples' || exit 1
# Declare the topology once, as the worker and producer would.
"$BIN/greet-producer" --count 1 --id-prefix warmup >/dev/null 2>&1

# Every scenario; run once, and again for those whose drain rate came back
# low (check_drain_rate).
run_scenarios() {

# ---- 1. kill -9 a worker holding a full prefetch window --------------------
if want kill9; then
backlog_scenario kill9 3
wait_progress "$FAULT_AT" 60
fault_now
kill -KILL "$(worker_pid w1)"
fault_over
scenario_end -1
check_drain_rate
check_reconnects 0
check "kill9: the killed worker was restarted by its supervisor" grep -q 137 "$SC/w1.exits"
fi

# ---- 2. broker stopped and started mid-drain --------------------------------
# A paced producer besides the backlog: it too must ride out the fault.
if want broker_restart; then
backlog_scenario broker_restart 2
produce_synthetic 6000 500 broker_restart-p
wait_progress "$FAULT_AT" 60
fault_now
rabbit_stop_now
sleep 2
rabbit_start
fault_over
scenario_end -1
check_drain_rate
check "broker_restart: workers reconnected (jittered backoff: not all at once)" \
    bash -c "[ \$(cat '$SC'/w*.log | grep -c 'event=broker.connected') -ge 3 ]"
check_back_within broker.connected 6 "reconnected to the broker"
check_reconnects 4
check "broker_restart: the producer rode it out" grep -q 'reconnected' "$SC/producer.err"
fi

# ---- 2b. connections force-closed ------------------------------------------
if want connections_closed; then
scenario_begin connections_closed
queue_backlog "$BACKLOG"
check "connections_closed: rabbitmqctl ready to close every connection" arm_close_all
start_workers 2
produce_synthetic 6000 500 connections_closed-p
wait_progress "$FAULT_AT" 60
fault_now
fire_close_all
fault_over
scenario_end -1
check_drain_rate
check "connections_closed: workers logged the lost connection" grep -q 'event=broker.lost' "$SC/w1.log"
check_reconnects 4
check "connections_closed: the producer rode it out" grep -q 'reconnected' "$SC/producer.err"
fi

# ---- 3. broker frozen longer than two heartbeats ----------------------------
if want broker_frozen; then
backlog_scenario broker_frozen 2
produce_synthetic 6000 500 broker_frozen-p
wait_progress "$FAULT_AT" 60
fault_now
kill -STOP "$(rabbit_vm_pid)"
sleep 6
kill -CONT "$(rabbit_vm_pid)"
fault_over
scenario_end -1
check_drain_rate
check "broker_frozen: missed heartbeats noticed" grep -q -E 'event=broker.lost error=.*heartbeat' "$SC/w1.log" "$SC/w2.log"
check_reconnects 4
check "broker_frozen: the producer rode it out" grep -q 'reconnected' "$SC/producer.err"
fi

# ---- 3b. one reconnect with a backlog -----------------------------------------
# One worker, a long backlog, every connection closed once: the worker's
# prefetch window comes back redelivered, and after those jobs the
# backlog (still tens of thousands) must flow at its old pace again, not
# one job per lookup.  Lookups take milliseconds here, as with a database
# across a network rather than on a local socket (PostgreSQL compiles
# every query with JIT): whether the worker gets stuck must not turn on a
# race between its last redelivered job and the first fresh delivery.
if want reconnect_backlog; then
scenario_begin reconnect_backlog
if [ "$(psql_ -A -t -c "SELECT pg_jit_available()")" = t ]; then
    psql_ -c "ALTER ROLE greet_worker SET jit_above_cost = 0"
    check_match "reconnect_backlog: lookups take milliseconds" \
        "$(psql -X -A -t -d "$DATABASE_URL" -c "SHOW jit_above_cost")" '^0$'
else
    skip "reconnect_backlog: lookups take milliseconds" "no JIT in this PostgreSQL: lookups stay fast"
fi
queue_backlog "$BACKLOG"
check "reconnect_backlog: rabbitmqctl ready to close every connection" arm_close_all
start_workers 1
wait_progress "$FAULT_AT" 60
fault_now
fire_close_all
fault_over
scenario_end -1
psql_ -c "ALTER ROLE greet_worker RESET jit_above_cost"
check_drain_rate
check_reconnects 2
fi

# ---- 3c. a reconnect while redelivered suspects and a backlog coexist ----------
# kill -9 sends w1's prefetch window back as redelivered jobs (suspects,
# processed one at a time: with windows of 1000, for a second or more);
# every connection is closed while they are in hand.  After that, the
# backlog must still drain at its old pace.
if want suspects_backlog; then
scenario_begin suspects_backlog
queue_backlog "$BACKLOG"
check "suspects_backlog: rabbitmqctl ready to close every connection" arm_close_all
start_workers 2 GREET_PREFETCH=1000
wait_progress "$FAULT_AT" 60
fault_now
kill -KILL "$(worker_pid w1)"
wait_for 5 grep -q 'event=suspect.run' "$SC/w1.log" "$SC/w2.log"
fire_close_all
fault_over
scenario_end -1
check_drain_rate
check "suspects_backlog: a worker lost its connection with suspects in hand" \
    bash -c "cat '$SC'/w*.log | awk '/event=suspect.run/ { s[\$4] = 1 } /event=broker.lost/ && s[\$4] { f = 1 } END { exit !f }'"
check_reconnects 4
fi

# ---- 4. PostgreSQL stopped for several seconds ------------------------------
if want db_stopped; then
backlog_scenario db_stopped 2
wait_progress "$FAULT_AT" 60
fault_now
pg_stop
sleep 5
pg_start
fault_over
scenario_end 0
check_drain_rate
check "db_stopped: the worker stopped taking jobs" grep -q 'event=consumer.stopped msg="database unavailable"' "$SC/w1.log"
check "db_stopped: and reconnected" bash -c "[ \$(grep -c 'event=db.connected' '$SC/w1.log') -ge 2 ]"
check_back_within db.connected 6 "reconnected to the database"
check_reconnects 0
fi

# ---- 4b. a backend terminated -----------------------------------------------
if want db_backend_terminated; then
backlog_scenario db_backend_terminated 2
wait_progress "$FAULT_AT" 60
fault_now
psql_ -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'greet-worker'" >/dev/null
fault_over
scenario_end 0
check_drain_rate
check "db_backend_terminated: workers reconnected" \
    bash -c "[ \$(cat '$SC'/w*.log | grep -c 'event=db.connected') -ge 4 ]"
check_reconnects 0
fi

# ---- 4c. a lock holding every lookup for 10 s, heartbeats of 2 s --------------
if want db_locked; then
backlog_scenario db_locked 2
wait_progress "$FAULT_AT" 60
fault_now
psql_ -c "BEGIN; LOCK TABLE user_preferences IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(10); COMMIT;" >/dev/null &
locker=$!
sleep 10
wait "$locker"
fault_over
scenario_end 0
check_drain_rate
check "db_locked: lookups timed out and were retried" grep -q 'event=db.lookup_failed' "$SC/w1.log" "$SC/w2.log"
check_reconnects 0
fi

# ---- 4d. a row the worker cannot read ------------------------------------------
# A SQL_ASCII database takes any byte; user 666's display_name holds 0xFF,
# which the UTF8 client encoding cannot carry.  The lookups that include
# 666 fail every time: that must cost only the jobs of user 666 (an error
# reply "bad_preferences" and a dead copy), not the innocent jobs looked up
# with them, nor the pace.
if want bad_row; then
scenario_begin bad_row
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "DROP DATABASE IF EXISTS greet_ascii" \
    -c "CREATE DATABASE greet_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0" >/dev/null
for file in "$ROOT"/sql/*.sql "$ROOT"/sql/sample/*.sql; do
    psql -X -q -v ON_ERROR_STOP=1 -d greet_ascii -f "$file" >/dev/null
done
psql -X -q -v ON_ERROR_STOP=1 -d greet_ascii -c "INSERT INTO user_preferences (user_id, display_name)
    VALUES (666, E'bad\\377name') ON CONFLICT (user_id) DO UPDATE SET display_name = EXCLUDED.display_name"
check_eq "bad_row: user 666's display_name holds byte 0xFF" \
    "$(psql -X -A -t -d greet_ascii -c "SELECT display_name::bytea FROM user_preferences WHERE user_id = 666")" \
    '\x626164ff6e616d65'
ascii_url=${DATABASE_URL/\/greet\?//greet_ascii?}
check_match "bad_row: the worker's role reads users 1..12 there, and cannot read user 666 in UTF8" \
    "$(psql -X -q -A -t -d "$ascii_url" -c "SET client_encoding = 'UTF8'" \
        -c "SELECT count(*) FROM user_preferences WHERE user_id <= 12" \
        -c "SELECT display_name FROM user_preferences WHERE user_id = 666" 2>&1)" \
    '^12.*invalid byte sequence'
# The backlog, with ten jobs of user 666 among the thousand after 40% of it.
bad_at=$((BACKLOG * 4 / 10))
awk -v n="$BACKLOG" -v at="$bad_at" 'BEGIN {
    for (i = 1; i <= n; i++)
        printf "{\"job_id\":\"bad_row-%d\",\"user_id\":%d}\n", i,
            (i > at && i <= at + 1000 && i % 100 == 0) ? 666 : 1 + i % 12
}' >"$SC/jobs.jsonl"
seq -f "bad_row-%.0f" 1 "$BACKLOG" >"$SC/sent"
awk '/"user_id":666}/ { sub(/^\{"job_id":"/, ""); sub(/".*/, ""); print $0 " bad_preferences" }' \
    "$SC/jobs.jsonl" >"$SC/poison"
"$BIN/greet-producer" --file "$SC/jobs.jsonl" >/dev/null 2>"$SC/backlog.err"
check_eq "bad_row: a backlog of $BACKLOG jobs queued" "$?" 0
rate_bounds "$BACKLOG"
start_workers 2 DATABASE_URL="$ascii_url"
wait_progress $((bad_at - 3000)) 60
fault_now
# The fault is over once the jobs of user 666 are behind the workers (or
# after 10 s: a worker stuck on them gets its rate measured from there).
wait_progress $((bad_at + 3000)) 10
fault_over
scenario_end 0
check_drain_rate
check_reconnects 0
fi

# ---- 4e. a reply queue that refuses every message ---------------------------------
# Jobs whose reply_to names a queue that exists but refuses messages
# (x-max-length 0, reject-publish: the broker nacks the reply).  That
# says nothing about the broker connection: no reconnect, the normal jobs
# flow on, and each refused job ends dead with x-greet-error=reply_refused
# (it has no reply anywhere) at once: a job waiting for a retry would keep
# every job delivered after it from a multiple ack, and singles (one Raft
# entry each on a quorum queue) cost the drain rate a quarter to a third
# for as long as it waits.
if want reply_refused; then
scenario_begin reply_refused
check "reply_refused: a refusing queue declared" "$TOOLS/mqtool" declare-refusing test.refusing
"$TOOLS/mqtool" purge test.refusing >/dev/null
first=$((BACKLOG * 4 / 10))
seq -f "reply_refused-%.0f" 1 "$first" >"$SC/sent"
"$BIN/greet-producer" --count "$first" --users 12 --id-prefix reply_refused >/dev/null 2>"$SC/backlog.err"
status=$?
seq -f '{"job_id":"reply_refused-x%.0f","user_id":3}' 1 5 >"$SC/refused.jsonl"
seq -f "reply_refused-x%.0f" 1 5 | tee -a "$SC/sent" >"$SC/unrepliable"
sed 's/$/ reply_refused/' "$SC/unrepliable" >"$SC/poison"
"$BIN/greet-producer" --file "$SC/refused.jsonl" --reply-to test.refusing >/dev/null 2>>"$SC/backlog.err"
status=$((status + $?))
seq -f "reply_refused-b-%.0f" 1 $((BACKLOG - first)) >>"$SC/sent"
"$BIN/greet-producer" --count $((BACKLOG - first)) --users 12 --id-prefix reply_refused-b \
    >/dev/null 2>>"$SC/backlog.err"
status=$((status + $?))
check_eq "reply_refused: a backlog of $BACKLOG jobs queued, 5 refused ones after the first $first" "$status" 0
rate_bounds "$BACKLOG"
start_workers 2
wait_progress $((first - 3000)) 60
fault_now
wait_progress $((first + 2000)) 15
fault_over
check "reply_refused: the 5 refused jobs reach the dead queue" \
    wait_for 40 bash -c "[ \$('$TOOLS/mqtool' depth greet.dead) -ge 5 ]"
scenario_end -1
check_eq "reply_refused: no refused reply waited for a retry (reply.nacked lines)" \
    "$(cat "$SC"/w*.log | grep -c 'event=reply.nacked')" 0
check_drain_rate
check_reconnects 0
fi

# ---- 5. SIGTERM under load -----------------------------------------------------
if want sigterm; then
scenario_begin sigterm
start_workers 3
produce_synthetic "$JOBS"
wait_progress $((JOBS / 10)) 60
fault_now
kill -TERM "$(worker_pid w1)"
fault_over
scenario_end 0
skip "sigterm: drain rate after the fault" "w1 leaves for good (exit 0, not restarted): three workers before, two after"
check_eq "sigterm: the worker exited 0" "$(cat "$SC/w1.exits")" 0
check "sigterm: it drained" grep -q 'event=shutdown.start' "$SC/w1.log"
check_reconnects 0
fi

# ---- 5b. a second signal -------------------------------------------------------
# A lock keeps every lookup waiting, so w1 is still draining when the
# second signal comes.
if want second_signal; then
scenario_begin second_signal
start_workers 3 GREET_SHUTDOWN_TIMEOUT=60
produce_synthetic "$JOBS"
wait_progress $((JOBS / 10)) 60
psql_ -c "BEGIN; LOCK TABLE user_preferences IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;" >/dev/null &
locker=$!
sleep 0.5
fault_now
pid=$(worker_pid w1)
kill -TERM "$pid"
sleep 0.5
kill -TERM "$pid"
wait "$locker"
fault_over
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
sampler_stop
collect greet.replies "$SC/replies.jsonl"
collect greet.dead "$SC/dead.jsonl"
verdict=$("$TOOLS/historycheck" "$SC_NAME" "$SC/sent" "$SC/poison" "$SC/crash" "$SC/replies.jsonl" \
    "$SC/dead.jsonl" "$("$TOOLS/mqtool" depth greet.jobs)" -1 2>/dev/null)
echo "$verdict"
check_match "broken_ack_early: the checker reports the lost jobs" "$verdict" 'lost [1-9][0-9]*.*FAIL$'
fi

}

run_scenarios
run_low_rates_again run_scenarios

tests_summary
