#!/usr/bin/env bash
# Integration tests: the contract end to end, against real RabbitMQ and
# PostgreSQL servers started here in a temp dir, driven only through the
# programs users run (greet-producer, greet-replies, greet-worker).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${GREET_BIN:-$ROOT/bin}
TOOLS=${GREET_TOOLS:-$ROOT/build/release/tests}
. "$ROOT/scripts/lib/servers.sh"
. "$ROOT/tests/lib/testlib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/greet-it.XXXXXX")
chmod 755 "$WORK" # the servers run as their own users
WORKER_PIDS=()
# Sanitizer builds report leaks and undefined behaviour through the exit
# status and stderr; both are checked below.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export GREET_HEARTBEAT=5 GREET_STATS_INTERVAL=0

cleanup() {
    stop_pids "${WORKER_PIDS[@]}"
    servers_stop
    finish_workdir "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# starting RabbitMQ and PostgreSQL in $WORK"
check "servers start" servers_start "$WORK/servers" || exit 1
check "schema and sample users load" eval 'servers_load_schema && servers_load_samples' || exit 1

# send ARGS...: one job through greet-producer --wait; prints the reply.
send() {
    "$BIN/greet-producer" --wait --timeout 15 "$@" 2>>"$WORK/producer.err"
}

# reply_of JSON-LINE...: sends raw lines, prints the replies.
send_raw() {
    printf '%s\n' "$@" | "$BIN/greet-producer" --file - --raw --wait --timeout 15 2>>"$WORK/producer.err"
}

drain_queue() {
    "$BIN/greet-replies" --reply-queue "$1" --timeout 0.1 >/dev/null && "$TOOLS/mqtool" purge "$1"
}

# next_message QUEUE: the next message of QUEUE as an envelope.
next_message() {
    "$BIN/greet-replies" --reply-queue "$1" --envelope --count 1 --timeout 10
}

queue_depth() {
    "$TOOLS/mqtool" depth "$1"
}

check "two workers start" eval 'start_worker w1 && start_worker w2' || exit 1

echo "# the greeting rule, each fallback"
check_eq "exact (language, formality) template" "$(send --user-id 4 --job-id rule-1)" \
    '{"job_id":"rule-1","status":"ok","message":"Bonjour, Jean.","language":"fr"}'
check_eq "unicode display name and template" "$(send --user-id 10 --job-id rule-2)" \
    '{"job_id":"rule-2","status":"ok","message":"山田様、こんにちは。","language":"ja"}'
psql_ -c "INSERT INTO greeting_templates VALUES ('it', 'casual', 'Ciao, {name}!') ON CONFLICT DO NOTHING;
          INSERT INTO user_preferences (user_id, display_name, language, formality)
          VALUES (100, 'Luca', 'it', 'formal'), (101, 'Bo', 'xx', 'casual')
          ON CONFLICT (user_id) DO NOTHING;
          INSERT INTO greeting_templates VALUES ('xx', 'casual', '{name} and {name}, {name}!') ON CONFLICT DO NOTHING;"
check_eq "(language, casual) when the formality has no template" "$(send --user-id 100 --job-id rule-3)" \
    '{"job_id":"rule-3","status":"ok","message":"Ciao, Luca!","language":"it"}'
check_eq "{name} replaced every time" "$(send --user-id 101 --job-id rule-4)" \
    '{"job_id":"rule-4","status":"ok","message":"Bo and Bo, Bo!","language":"xx"}'
psql_ -c "UPDATE greeting_templates SET template = 'Hey {name}!' WHERE language = 'en' AND formality = 'casual'"
check_eq "(en, casual) row when the language has no template" "$(send --user-id 12 --job-id rule-5)" \
    '{"job_id":"rule-5","status":"ok","message":"Hey Olu!","language":"en"}'
psql_ -c "DELETE FROM greeting_templates WHERE language = 'en' AND formality = 'casual'"
check_eq "built-in template when (en, casual) is missing too" "$(send --user-id 12 --job-id rule-6)" \
    '{"job_id":"rule-6","status":"ok","message":"Hello, Olu!","language":"en"}'
psql_ -f "$ROOT/sql/003_seed_templates.sql"
check_eq "display name NULL: World" "$(send --user-id 11 --job-id rule-7)" \
    '{"job_id":"rule-7","status":"ok","message":"Bonjour, World.","language":"fr"}'
check_eq "job name beats display name" "$(send --user-id 1 --name Zoë --job-id rule-8)" \
    '{"job_id":"rule-8","status":"ok","message":"Hello, Zoë!","language":"en"}'
check_eq "no user_id: defaults" "$(send --job-id rule-9)" \
    '{"job_id":"rule-9","status":"ok","message":"Hello, World!","language":"en"}'
check_eq "unknown user_id: defaults" "$(send --user-id 987654321 --name Kim --job-id rule-10)" \
    '{"job_id":"rule-10","status":"ok","message":"Hello, Kim!","language":"en"}'
check_eq "{name} inside the name is not expanded" "$(send --name '{name}' --job-id rule-11)" \
    '{"job_id":"rule-11","status":"ok","message":"Hello, {name}!","language":"en"}'
check_eq "unknown keys are ignored" "$(send_raw '{"job_id":"rule-12","user_id":1,"future":{"x":[1]}}')" \
    '{"job_id":"rule-12","status":"ok","message":"Hello, Ada!","language":"en"}'

echo "# preferences are read for every job"
psql_ -c "UPDATE user_preferences SET language = 'de', formality = 'formal' WHERE user_id = 1"
check_eq "a committed change is seen by the next job" "$(send --user-id 1 --job-id pref-1)" \
    '{"job_id":"pref-1","status":"ok","message":"Guten Tag, Ada.","language":"de"}'
psql_ -c "UPDATE user_preferences SET language = 'en', formality = 'casual' WHERE user_id = 1"
check_eq "and changing it back too" "$(send --user-id 1 --job-id pref-2)" \
    '{"job_id":"pref-2","status":"ok","message":"Hello, Ada!","language":"en"}'

echo "# the same job twice gives byte-identical replies"
first=$(send --user-id 9 --job-id dup-1)
second=$(send --user-id 9 --job-id dup-1)
check_eq "redelivered job, identical body" "$second" "$first"

echo "# reply properties: custom reply_to and correlation_id, default queue"
drain_queue test.custom
check "producer sends with --reply-to and --correlation-id" \
    "$BIN/greet-producer" --reply-to test.custom --correlation-id corr-42 --job-id rt-1 --user-id 2
env=$(next_message test.custom)
check_eq "reply on the custom queue" "$(jq -c .body <<<"$env")" \
    '{"job_id":"rt-1","status":"ok","message":"Good day, Grace.","language":"en"}'
check_eq "correlation_id echoed" "$(jq -r .correlation_id <<<"$env")" corr-42
check_eq "message_id is the job_id" "$(jq -r .message_id <<<"$env")" rt-1
check_eq "content_type application/json, persistent" "$(jq -r '"\(.content_type) \(.persistent)"' <<<"$env")" \
    "application/json true"
drain_queue greet.replies
check "producer sends to the default reply queue" "$BIN/greet-producer" --job-id def-1 --user-id 5
env=$(next_message greet.replies)
check_eq "reply on GREET_REPLY_QUEUE" "$(jq -c .body <<<"$env")" \
    '{"job_id":"def-1","status":"ok","message":"Hallo, Lena!","language":"de"}'
check_eq "correlation_id defaults to the job_id" "$(jq -r .correlation_id <<<"$env")" def-1

echo "# poison jobs: error reply, dead copy, ack, worker carries on"
drain_queue greet.dead
reply=$(send_raw 'this is not json')
check_eq "invalid_json reply" "$(jq -c '[.job_id, .status, .error]' <<<"$reply")" '[null,"error","invalid_json"]'
check_match "invalid_json detail is a sentence" "$(jq -r .detail <<<"$reply")" '^body is not valid JSON'
env=$(next_message greet.dead)
check_eq "invalid_json dead copy: original body and headers" \
    "$(jq -c '[.body, .headers["x-greet-error"]]' <<<"$env")" '["this is not json","invalid_json"]'
reply=$(send_raw '{"job_id":"poison-2","user_id":"seven"}')
check_eq "invalid_job reply keeps the job_id" "$reply" \
    '{"job_id":"poison-2","status":"error","error":"invalid_job","detail":"user_id must be an integer >= 1"}'
env=$(next_message greet.dead)
check_eq "invalid_job dead copy with x-greet-detail" \
    "$(jq -c '[.body.job_id, .headers["x-greet-error"], .headers["x-greet-detail"]]' <<<"$env")" \
    '["poison-2","invalid_job","user_id must be an integer >= 1"]'
big=$(printf '{"job_id":"poison-3","pad":"%070000d"}' 0)
reply=$(send_raw "$big")
check_eq "too_large reply, with the job_id it could read" "$(jq -c '[.job_id, .error]' <<<"$reply")" \
    '["poison-3","too_large"]'
env=$(next_message greet.dead)
check_eq "too_large dead copy holds the whole body" "$(jq -r '.body.pad | length' <<<"$env")" 70000
reply=$(send_raw '[1,2,3]' '{"job_id":""}' "{\"job_id\":\"poison-6\",\"name\":\"$(printf 'n%.0s' $(seq 201))\"}")
check_eq "non-object, empty job_id, 201-character name" "$(jq -sc 'map(.error) | unique' <<<"$reply")" \
    '["invalid_job"]'
check_eq "the worker carries on after poison" "$(send --user-id 3 --job-id after-poison)" \
    '{"job_id":"after-poison","status":"ok","message":"Salut, Amélie !","language":"fr"}'
check_eq "poison never loops: jobs queue empty" "$(queue_depth greet.jobs)" 0
check_eq "dead queue holds exactly the three poison jobs not yet read" "$(queue_depth greet.dead)" 3
drain_queue greet.dead

echo "# reply_to that would loop"
drain_queue greet.replies
printf '%s\n' '{"job_id":"loop-1"}' >"$WORK/loop.jsonl"
check "job with reply_to = the jobs queue is accepted by the broker" \
    "$BIN/greet-producer" --file "$WORK/loop.jsonl" --reply-to greet.jobs
env=$(next_message greet.replies)
check_eq "answered with invalid_job on the default queue" "$(jq -c '[.body.job_id, .body.error]' <<<"$env")" \
    '["loop-1","invalid_job"]'
drain_queue greet.dead

echo "# a reply to a queue that does not exist"
check "producer sends with a missing reply_to" \
    "$BIN/greet-producer" --reply-to no.such.queue --job-id missing-1 --user-id 1
check "worker warns and counts the unroutable reply" \
    wait_for 10 grep -q 'event=reply.unroutable job_id=missing-1' "$WORK/w1.log" "$WORK/w2.log"
check_eq "the job still completes (not redelivered)" "$(queue_depth greet.jobs)" 0
check_eq "and the next job is fine" "$(send --job-id after-missing)" \
    '{"job_id":"after-missing","status":"ok","message":"Hello, World!","language":"en"}'

echo "# producer: --wait exit codes, bad input, summaries"
"$BIN/greet-producer" --count 300 --users 12 --wait --timeout 30 >"$WORK/load.out" 2>"$WORK/load.err"
check_eq "--wait exits 0 when every job got an ok reply" "$?" 0
check_eq "one reply line per job" "$(jq -s 'map(select(.status == "ok")) | length' "$WORK/load.out")" 300
check_match "summary line gives jobs and jobs/s" "$(tail -n 1 "$WORK/load.err")" \
    '300 jobs confirmed in [0-9.]+ s \([0-9]+ jobs/s\)'
"$BIN/greet-producer" --count 200 --users 12 --progress >/dev/null 2>"$WORK/progress.err"
check "--progress shows count and rate on stderr" grep -q 'sent 200/200, confirmed 200 ([0-9]* jobs/s)' \
    "$WORK/progress.err"
send_raw '{"job_id":"w-1"}' '{"job_id":"w-2","user_id":-1}' >/dev/null
check_eq "--wait exits 1 when a reply is an error" "$?" 1
GREET_JOBS_QUEUE=test.unserved "$BIN/greet-producer" --wait --timeout 1 >/dev/null 2>"$WORK/timeout.err"
check_eq "--wait exits 1 on timeout" "$?" 1
check "and names the job without a reply" grep -q 'no reply for job' "$WORK/timeout.err"
printf '%s\n' '{"job_id":"ok-1"}' '{"job_id":"bad","user_id":0}' >"$WORK/bad.jsonl"
"$BIN/greet-producer" --file "$WORK/bad.jsonl" 2>"$WORK/bad.err"
check_eq "a file with a bad line exits 2" "$?" 2
check "and names the line and the problem" grep -q "bad.jsonl:2: user_id must be an integer >= 1" "$WORK/bad.err"
check "and sends nothing" grep -q "nothing was sent" "$WORK/bad.err"
"$BIN/greet-producer" --count 5 --file x 2>/dev/null
check_eq "conflicting flags exit 2" "$?" 2
"$BIN/greet-producer" --name "" 2>"$WORK/empty.err"
check_eq "an empty --name exits 2" "$?" 2
"$BIN/greet-producer" --count 0 2>"$WORK/count0.err"
check_eq "--count 0 exits 2 (it used to send one job)" "$?" 2
check "and says what --count takes" grep -q -- "--count: expected a whole number from 1 to" "$WORK/count0.err"
prefix='q"\'$(printf 'é%.0s' {1..30}) # 63 bytes: quote, backslash, multibyte
"$BIN/greet-producer" --count 3 --id-prefix "$prefix" --wait --timeout 10 >"$WORK/prefix.out" 2>/dev/null
check_eq "--id-prefix with a quote, a backslash, 63 bytes: every job answered ok" "$?" 0
check_eq "under the job_ids asked for" "$(jq -r .job_id "$WORK/prefix.out" | sort | head -n 1)" "$prefix-1"
"$BIN/greet-producer" --job-id full-1 >/dev/full 2>"$WORK/full.err"
check_eq "stdout full: the job_id is lost, so exit 1" "$?" 1
check "and the message names the job and the error" grep -q 'full-1.*No space left on device' "$WORK/full.err"
"$BIN/greet-producer" --job-id closed-1 >&- 2>"$WORK/closed.err"
check_eq "stdout closed: exit 1" "$?" 1
check "and the message names the job and the error" grep -q 'closed-1.*Bad file descriptor' "$WORK/closed.err"
"$BIN/greet-producer" --count 5 --wait --timeout 10 2>"$WORK/epipe.err" | true
check_eq "--wait into a pipe nobody reads: exit 1" "${PIPESTATUS[0]}" 1
check "and says why" grep -q 'writing replies to stdout: Broken pipe' "$WORK/epipe.err"
AMQP_URL="amqp://guest:secret@127.0.0.1:1/" "$BIN/greet-producer" --job-id x 2>"$WORK/down.err"
check_eq "broker unreachable: producer exits 1" "$?" 1
check "with the URL masked" grep -q 'guest:\*\*\*@127.0.0.1:1' "$WORK/down.err"
check "and no secret" bash -c "! grep -q secret '$WORK/down.err'"

echo "# a jobs queue that refuses every job (basic.nack)"
# The producer retries each refused job (a quorum queue electing a leader
# refuses for a moment), and a second refusal of a job makes it reconnect,
# in case its channel is a stale one (producer.c) -- once per job, never in
# a loop: two jobs, at most two reconnects, then each job is reported.
"$TOOLS/mqtool" declare-refusing test.refusing-jobs >/dev/null
GREET_LOG_LEVEL=warn GREET_JOBS_QUEUE=test.refusing-jobs timeout 60 "$BIN/greet-producer" --count 2 \
    >/dev/null 2>"$WORK/refused-jobs.err"
check_eq "a jobs queue that refuses: exit 1" "$?" 1
check_eq "  each job reported refused, all 7 times it was sent" \
    "$(grep -c 'not confirmed: the broker refused it (basic.nack) all 7 times it was sent' "$WORK/refused-jobs.err")" 2
check_match "  a reconnect for a stale channel, at most one per job" \
    "$(grep -c 'event=broker.lost error="the broker keeps refusing jobs to the jobs queue"' "$WORK/refused-jobs.err")" '^[12]$'
check "  and the summary says so" grep -q '0 jobs confirmed in .*; [12] reconnect(s)' "$WORK/refused-jobs.err"

echo "# a list of broker URLs (a cluster's nodes)"
dead1="amqp://guest:sec%2Cret@127.0.0.1:1/"
dead2="amqp://u:secret@127.0.0.1:2/"
AMQP_URL="$dead1,$AMQP_URL;$dead2" "$BIN/greet-producer" --job-id list-1 --wait --timeout 10 \
    >"$WORK/list.out" 2>"$WORK/list.err"
check_eq "AMQP_URL with dead nodes around a live one (',' and ';'): the job is answered" \
    "$(jq -r .status "$WORK/list.out" 2>/dev/null)" ok
# Each process starts at a random entry: of 16 producers given a dead node
# and a live one, some try the dead one first, some do not (all alike:
# 1 in 32768).
: >"$WORK/spread.log"
for i in $(seq 16); do
    AMQP_URL="$dead1,$AMQP_URL" "$BIN/greet-producer" --job-id "spread-$i" >/dev/null 2>"$WORK/spread.err" ||
        echo "exit $?" >>"$WORK/spread.log"
    grep -c 'event=broker.connect_failed' "$WORK/spread.err" >>"$WORK/spread.log"
done
check "16 producers given a dead and a live node: every one sent its job" \
    bash -c "! grep -q exit '$WORK/spread.log'"
check_match "and they started at either node (runs that tried the dead one first: 1..15)" \
    "$(grep -c '^1$' "$WORK/spread.log")" '^([1-9]|1[0-5])$'
AMQP_URL="$dead1, $dead2" "$BIN/greet-producer" --job-id x 2>"$WORK/alldown.err"
check_eq "every node down: producer exits 1" "$?" 1
check "and says all of them failed, naming the last, masked" \
    grep -q 'all 2 broker URLs failed; the last, amqp://[gu][a-z]*:\*\*\*@127.0.0.1:[12]/' "$WORK/alldown.err"
check "and no secret" bash -c "! grep -q secret '$WORK/alldown.err'"
for bad in "$AMQP_URL,,$dead2|entry 2 of 3 is empty" "$AMQP_URL,amqp://u:pa,ss@h/|entry 2 of 3: librabbitmq cannot parse" \
    "$dead1;http://u:secret@h/|entry 2 of 2: librabbitmq cannot parse '\*\*\*'"; do
    AMQP_URL="${bad%%|*}" "$BIN/greet-worker" >/dev/null 2>"$WORK/badlist.err"
    check_eq "a bad list entry stops start-up (exit 2): ${bad#*|}" "$?" 2
    check "and the message names its position" grep -q "AMQP_URL (--amqp-url): ${bad#*|}" "$WORK/badlist.err"
    check "and shows no password" bash -c "! grep -q -e secret -e 'pa,ss' '$WORK/badlist.err'"
done

echo "# greet-replies"
drain_queue greet.replies
"$BIN/greet-producer" --job-id same-1 >/dev/null 2>&1 && "$BIN/greet-producer" --job-id same-1 >/dev/null 2>&1
"$BIN/greet-replies" --dedupe --timeout 2 >"$WORK/dedupe.out" 2>"$WORK/dedupe.err"
check_eq "--dedupe prints a redelivered reply once" "$(wc -l <"$WORK/dedupe.out")" 1
check "and says how many it dropped" grep -q 'dropped 1 duplicate' "$WORK/dedupe.err"
"$BIN/greet-producer" --count 3 --users 1 >/dev/null 2>&1
check_eq "--count N stops after N" "$("$BIN/greet-replies" --count 2 --timeout 10 | wc -l)" 2
check_eq "the rest stays queued (nothing acked unprinted)" "$("$BIN/greet-replies" --count 1 --timeout 10 | wc -l)" 1
"$BIN/greet-replies" --count 1 --timeout 0.5 >/dev/null 2>&1
check_eq "--count with --timeout exits 1 when replies do not come" "$?" 1
"$BIN/greet-producer" --job-id kept-1 >/dev/null 2>&1
"$BIN/greet-replies" --count 1 --timeout 10 >&- 2>"$WORK/replies-closed.err"
check_eq "stdout closed: exit 1" "$?" 1
check "and says why" grep -q 'writing to stdout: Bad file descriptor' "$WORK/replies-closed.err"
check_eq "the reply it could not print stays queued" \
    "$("$BIN/greet-replies" --count 1 --timeout 10 | jq -r .job_id)" kept-1

echo "# every program: --help, --version, bad configuration"
for program in greet-worker greet-producer greet-replies; do
    check "$program --help exits 0" bash -c "'$BIN/$program' --help | grep -q Usage"
    check_match "$program --version" "$("$BIN/$program" --version)" "^$program [0-9]+\.[0-9]+\.[0-9]+$"
    GREET_HEARTBEAT=often "$BIN/$program" >/dev/null 2>"$WORK/badcfg.err"
    check_eq "$program: bad variable exits 2" "$?" 2
    check "$program: the message names the variable" grep -q 'GREET_HEARTBEAT (--heartbeat)' "$WORK/badcfg.err"
    "$BIN/$program" --no-such-flag >/dev/null 2>&1
    check_eq "$program: unknown flag exits 2" "$?" 2
done

check "the command-line programs log nothing by default" bash -c "! grep -q 'event=' '$WORK/load.err'"
GREET_LOG_LEVEL=info "$BIN/greet-producer" --job-id log-1 >/dev/null 2>"$WORK/loglevel.err"
check "GREET_LOG_LEVEL=info: greet-producer logs its config on stderr, password masked" \
    grep -q 'event=config AMQP_URL=amqp://guest:\*\*\*@' "$WORK/loglevel.err"
"$BIN/greet-replies" --log-level info --timeout 0.1 >/dev/null 2>"$WORK/loglevel.err"
check "--log-level info: greet-replies too" grep -q 'event=config' "$WORK/loglevel.err"

echo "# worker: logs, secrets, broker down at start"
check "start-up logs the effective config with the password masked" \
    grep -q 'event=config AMQP_URL=amqp://guest:\*\*\*@' "$WORK/w1.log"
check "no password in any worker log" bash -c "! grep -q 'guest:guest' '$WORK'/w*.log"
psql_ -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'greet-worker'" >/dev/null
check "a backend terminated while idle: its FATAL reaches the log as a logfmt line" \
    wait_for 5 grep -q 'event=db.notice severity=FATAL sqlstate=57P01 msg="terminating connection' "$WORK/w1.log"
check "every line of every worker log is logfmt (no raw libpq text)" \
    bash -c "! grep -h -v '^ts=' '$WORK'/w*.log"
"$BIN/greet-producer" --job-id after-terminate --wait --timeout 10 >"$WORK/after-terminate.out" 2>/dev/null
check_eq "and the workers answer the next job" "$(jq -r .status "$WORK/after-terminate.out" 2>/dev/null)" ok
AMQP_URL="amqp://guest:guest@127.0.0.1:1/" "$BIN/greet-worker" >"$WORK/nobroker.log" 2>&1 &
nobroker=$!
check "worker with the broker down keeps retrying with backoff" \
    wait_for 10 bash -c "[ \$(grep -c 'event=broker.connect_failed' '$WORK/nobroker.log') -ge 3 ]"
kill -TERM "$nobroker"
wait "$nobroker"
check_eq "and exits 0 on SIGTERM" "$?" 0

echo "# SIGTERM under load: drain, exit 0, nothing lost"
start_worker w3 GREET_PREFETCH=50
w3=$LAST_PID
"$BIN/greet-producer" --count 3000 --users 12 --wait --timeout 60 >"$WORK/term.out" 2>"$WORK/term.err" &
producer=$!
sleep 0.3
started=$(date +%s%N)
kill -TERM "$w3"
wait "$w3"
check_eq "worker exits 0 after SIGTERM" "$?" 0
check "within its shutdown deadline" test $((($(date +%s%N) - started) / 1000000)) -lt 10000
check "it logged the drain and a summary" grep -q 'event=worker.stopped jobs_ok=' "$WORK/w3.log"
wait "$producer"
check_eq "every job answered ok (other workers took over)" "$?" 0

echo "# a second signal exits at once"
# A lock holds every lookup, so w4 has jobs in hand it cannot finish.  It
# starts first: preparing its statement would wait for the lock too.
start_worker w4 GREET_SHUTDOWN_TIMEOUT=60 GREET_DB_TIMEOUT=30
w4=$LAST_PID
psql_ -c "BEGIN; LOCK TABLE user_preferences IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(4); COMMIT;" >/dev/null &
locker=$!
sleep 0.3
"$BIN/greet-producer" --count 50 --users 12 --wait --timeout 60 >/dev/null 2>"$WORK/second.err" &
producer=$!
sleep 0.5
kill -TERM "$w4"
sleep 0.3
started=$(date +%s%N)
kill -TERM "$w4" 2>/dev/null
wait "$w4"
status=$?
check "second signal: exit at once" test $((($(date +%s%N) - started) / 1000000)) -lt 1000
check_eq "second signal: exit status 1" "$status" 1
wait "$locker"
wait "$producer"
check_eq "its jobs are redelivered and answered" "$?" 0

echo "# a DATABASE_URL of two hosts, the first one stalled"
# libpq moves to the next host only when one fails; a host that takes the
# connection and says nothing would hold every attempt for ever.  The
# worker gives libpq one host per attempt, the next after one that did
# not end connected: after one connect timeout (10 s), the second host.
stop_pids "${WORKER_PIDS[@]}"
WORKER_PIDS=()
stall_port=$(free_port)
start_stall_server "$stall_port"
start_worker w-hosts DATABASE_URL="postgresql://greet_worker@127.0.0.1:$stall_port,127.0.0.1:$PG_PORT/greet?sslmode=disable"
check "a worker with a stalled first database host reaches the second" \
    wait_for 30 grep -q 'event=db.connected' "$WORK/w-hosts.log"
check_eq "  after one timed-out attempt at the first" \
    "$(grep -c 'event=db.lost.*connect timed out' "$WORK/w-hosts.log")" 1
check_eq "  and answers a job" "$(send --job-id hosts-1 --user-id 1 | jq -r .status)" ok
stop_pids "$STALL_PID" "${WORKER_PIDS[@]}"
WORKER_PIDS=()

echo "# docker-compose.yml"
if command -v docker-compose >/dev/null 2>&1; then
    check "docker-compose config validates" docker-compose -f "$ROOT/docker-compose.yml" config -q
else
    _record 1 "docker-compose config validates (docker-compose not installed)"
fi

echo "# sanitizers"
stop_pids "${WORKER_PIDS[@]}"
WORKER_PIDS=()
check "no sanitizer report in any log" no_sanitizer_report "$WORK"/*.log "$WORK"/*.err

tests_summary
