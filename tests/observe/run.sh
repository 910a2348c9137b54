#!/usr/bin/env bash
# The worker's metrics and health port against the real things: a
# Prometheus server (Debian's) scraping a worker that drains jobs,
# promtool on the exposition, /healthz and /readyz through a broker
# outage, a database outage and a stalled loop, and bad HTTP clients
# next to a draining worker -- what they cost its job loop, measured.
#
# Needs a fault-injection build for the stalled loop (GREET_BIN pointing
# at build/faults/bin, as scripts/test.sh runs it); other builds skip it.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${GREET_BIN:-$ROOT/build/faults/bin}
TOOLS=${GREET_TOOLS:-$ROOT/build/faults/tests}
. "$ROOT/scripts/lib/servers.sh"
. "$ROOT/tests/lib/testlib.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/greet-observe.XXXXXX")
chmod 755 "$WORK"
WORKER_PID=""
PROM_PID=""
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export GREET_HEARTBEAT=5 GREET_STATS_INTERVAL=0

cleanup() {
    stop_pids $WORKER_PID $PROM_PID
    servers_stop
    finish_workdir "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for tool in prometheus promtool curl jq; do
    command -v $tool >/dev/null || { echo "not ok - $tool is installed (apt-get install prometheus curl jq)"; echo "0 passed, 1 failed"; exit 1; }
done

echo "# starting RabbitMQ and PostgreSQL in $WORK"
check "servers start" servers_start "$WORK/servers" || exit 1
check "schema and sample users load" eval 'servers_load_schema && servers_load_samples' || exit 1
HTTP_PORT=$(free_port)
PROM_PORT=$(free_port)
URL="http://127.0.0.1:$HTTP_PORT"

# code PATH: the HTTP status of GET PATH on the worker ("000": no answer).
code() {
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$URL$1"
}

# answers PATH CODE: GET PATH answers CODE now (for wait_for).
answers() {
    [ "$(code "$1")" = "$2" ]
}

# start_http_worker LOG [VAR=value...]: the worker with its port, in the
# background (not waited for: the endpoints are what is tested).
start_http_worker() {
    local log=$1
    shift
    env GREET_HTTP_ADDR="127.0.0.1:$HTTP_PORT" "$@" "$BIN/greet-worker" >>"$WORK/$log" 2>&1 &
    WORKER_PID=$!
}

stop_http_worker() {
    stop_pids $WORKER_PID
    WORKER_PID=""
}

# ---- 1. a bad address is refused before anything starts ------------------
out=$(GREET_HTTP_ADDR=example.com:9464 "$BIN/greet-worker" 2>&1)
check_eq "a bad GREET_HTTP_ADDR: exit 2" "$?" 2
check_match "... naming the variable and what is wrong" "$out" \
    "GREET_HTTP_ADDR \\(--http-addr\\): 'example.com:9464': 'example.com' is not an IPv4 address"

# ---- 2. the endpoints ----------------------------------------------------
start_http_worker w.log
check "the worker answers /healthz" wait_for 10 answers /healthz 200
check "... and /readyz once connected and consuming" wait_for 10 answers /readyz 200
check_eq "/readyz says ready" "$(curl -s "$URL/readyz")" "ready"
check_eq "an unknown path is 404" "$(code /nope)" 404
check_eq "POST is 405" "$(curl -s -o /dev/null -w '%{http_code}' -X POST -d x "$URL/metrics")" 405
check_match "the metrics content type is the text format's" \
    "$(curl -s -o /dev/null -w '%{content_type}' "$URL/metrics")" '^text/plain; version=0\.0\.4'
out=$(GREET_HTTP_ADDR="127.0.0.1:$HTTP_PORT" "$BIN/greet-worker" 2>&1)
check_eq "a second worker on the same port does not start (exit 1)" "$?" 1
check_match "... and says why" "$out" 'event=worker.start_failed error="cannot listen on 127.0.0.1:[0-9]+: Address already in use"'

# ---- 3. a real Prometheus scrapes a worker draining N jobs ---------------
N=20000
mkdir -p "$WORK/prometheus"
cat >"$WORK/prometheus/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: greet-worker
    static_configs:
      - targets: ['127.0.0.1:$HTTP_PORT']
YML
check "promtool check config" promtool check config "$WORK/prometheus/prometheus.yml" >/dev/null
prometheus --config.file="$WORK/prometheus/prometheus.yml" --storage.tsdb.path="$WORK/prometheus/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus/log" 2>&1 &
PROM_PID=$!
check "Prometheus starts" wait_for 30 curl -sf "http://127.0.0.1:$PROM_PORT/-/ready" -o /dev/null

# query EXPR: the value of an instant query, "" when none.
query() {
    curl -s "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" |
        jq -r '.data.result[0].value[1] // empty' 2>/dev/null
}

# query_is EXPR VALUE: Prometheus answers VALUE now (for wait_for).
query_is() {
    [ "$(query "$1")" = "$2" ]
}

check "Prometheus sees the worker up" wait_for 20 query_is 'up{job="greet-worker"}' 1
seq -f "obs-%.0f" 1 $N >"$WORK/sent"
"$BIN/greet-producer" --count $N --users 12 --id-prefix obs >/dev/null 2>"$WORK/producer.err"
check_eq "the producer sent $N jobs" "$?" 0
"$BIN/greet-replies" --envelope --prefetch 1000 --count $N --timeout 120 >"$WORK/replies.jsonl" 2>"$WORK/replies.err"
check_eq "the subscriber read $N replies" "$(wc -l <"$WORK/replies.jsonl")" $N
: >"$WORK/none"
history=$("$TOOLS/historycheck" obs "$WORK/sent" "$WORK/none" "$WORK/none" "$WORK/replies.jsonl" \
    "$WORK/none" 0 0 2>&1)
check "the history checker counts every job answered once" grep -q 'PASS' <<<"$history"
echo "#   $history"
start=$SECONDS
check "Prometheus's sum(greet_jobs_total) reaches $N" \
    wait_for 30 query_is 'sum(greet_jobs_total{job="greet-worker"})' "$N"
echo "#   Prometheus saw $(query 'sum(greet_jobs_total{job="greet-worker"})') jobs $((SECONDS - start)) s after the last reply"
check_eq "... all of them ok" "$(query 'greet_jobs_total{outcome="ok"}')" "$N"
check_eq "the job-duration histogram counted each job once" \
    "$(query 'greet_job_duration_seconds_count')" "$N"
check_eq "the confirm histogram counted each reply once" \
    "$(query 'greet_confirm_latency_seconds_count')" "$N"
check_eq "the lookups histogram counted each lookup" \
    "$(query 'greet_lookup_duration_seconds_count')" "$(query 'greet_lookups_total')"
p99=$(query 'histogram_quantile(0.99, greet_job_duration_seconds_bucket)')
check_match "histogram_quantile works on the buckets (p99 job duration $p99 s)" "$p99" '^[0-9.e+-]+$'
check_eq "jobs in flight back to 0" "$(query 'greet_jobs_in_flight')" 0
check_eq "the ready gauge is 1" "$(query 'greet_ready')" 1
check_match "build_info carries the version" \
    "$(curl -s "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode 'query=greet_build_info' |
        jq -r '.data.result[0].metric.version')" '^[0-9]+\.[0-9]+\.[0-9]+'
curl -s "$URL/metrics" >"$WORK/metrics.txt"
check "promtool check metrics passes on the exposition" promtool check metrics <"$WORK/metrics.txt"
check_eq "every family has one TYPE line" \
    "$(grep -c '^# TYPE' "$WORK/metrics.txt")" "$(grep '^# TYPE' "$WORK/metrics.txt" | sort -u | wc -l)"

# ---- 4. health through outages ---------------------------------------------
# watch_health SECONDS FILE: /healthz and /readyz every 0.1 s, one line each.
watch_health() {
    local end=$((SECONDS + $1))
    while [ $SECONDS -lt $end ]; do
        echo "$(code /healthz) $(code /readyz)"
        sleep 0.1
    done >"$2"
}

# outage NAME SERVER STOP START DOWN-SECONDS: the server stopped and
# started while /healthz and /readyz are watched; /readyz must go 503
# saying "not connected to the SERVER" and come back, /healthz stay 200.
outage() {
    local name=$1 server=$2 stop=$3 start=$4 down=$5 watcher
    watch_health $((down + 9)) "$WORK/health.$name" &
    watcher=$!
    sleep 1
    $stop
    check "$name down: /readyz goes 503" wait_for 10 answers /readyz 503
    check_match "... saying why" "$(curl -s "$URL/readyz")" "^not connected to the $server"
    check_eq "... and the ready gauge says 0" "$(curl -s "$URL/metrics" | grep '^greet_ready ')" "greet_ready 0"
    sleep "$down"
    $start
    check "$name back: /readyz 200 again" wait_for 15 answers /readyz 200
    wait $watcher
    check_eq "/healthz stayed 200 through the $name outage" \
        "$(awk '$1 != 200' "$WORK/health.$name" | wc -l)" 0
    check "... while /readyz was 503 in it" grep -q ' 503$' "$WORK/health.$name"
}

outage broker broker rabbit_stop_now rabbit_start 2
outage database database pg_stop pg_start 1
check "Prometheus counted the reconnect (greet_broker_connects_total 2)" \
    wait_for 10 query_is 'greet_broker_connects_total' 2

# ---- 5. a stalled loop fails /healthz; SIGTERM ends /readyz --------------
stop_http_worker
if grep -q -a GREET_FAULT_STALL_JOB "$BIN/greet-worker"; then
    start_http_worker stall.log GREET_FAULT_STALL_JOB=stall-1 GREET_FAULT_STALL_SECONDS=6 GREET_FAULT_STALL_LIMIT=2
    wait_for 10 answers /healthz 200
    "$BIN/greet-producer" --count 1 --id-prefix stall --users 1 2>/dev/null
    check "a loop stalled past the limit: /healthz 503" wait_for 5 answers /healthz 503
    check_match "... saying so" "$(curl -s "$URL/healthz")" '^stalled: the event loop has not turned for [0-9.]+ s'
    check "once it turns again: /healthz 200" wait_for 10 answers /healthz 200
    stop_http_worker
else
    skip "a stalled loop fails /healthz" "not a fault-injection build ($BIN)"
fi
start_http_worker term.log GREET_SHUTDOWN_TIMEOUT=3
wait_for 10 answers /readyz 200
stop_http_worker
check_eq "after SIGTERM the port is closed" "$(code /healthz)" 000

# ---- 6. bad clients cost the job loop nothing --------------------------------
# drain LABEL [ABUSE...]: a backlog of M jobs drained by a fresh worker,
# the abuse (httpabuse arguments) running beside it; appends to
# $WORK/drains "LABEL RATE CPU": the drain rate and the CPU time the
# loop's thread (the process's main one) took per job, in microseconds.
M=60000
drain() {
    local label=$1 abuser="" started ended cpu0 cpu1
    shift
    "$BIN/greet-producer" --count $M --users 12 --id-prefix "$label" >/dev/null 2>>"$WORK/producer.err"
    "$TOOLS/mqtool" purge greet.replies >/dev/null
    start_http_worker "drain-$label.log"
    wait_for 10 answers /readyz 200
    if [ $# -gt 0 ]; then
        "$TOOLS/httpabuse" "$HTTP_PORT" "$@" >"$WORK/abuse-$label.out" 2>&1 &
        abuser=$!
    fi
    (sleep 1 && code /healthz >"$WORK/probe-$label") &
    started=$(date +%s.%N)
    cpu0=$(awk '{ print $14 + $15 }' "/proc/$WORKER_PID/task/$WORKER_PID/stat")
    "$TOOLS/mqtool" wait greet.replies $M 180 >/dev/null
    ended=$(date +%s.%N)
    cpu1=$(awk '{ print $14 + $15 }' "/proc/$WORKER_PID/task/$WORKER_PID/stat")
    [ -n "$abuser" ] && wait $abuser
    stop_http_worker
    awk -v l="$label" -v s="$started" -v e="$ended" -v c0="$cpu0" -v c1="$cpu1" \
        -v t="$(getconf CLK_TCK)" -v m=$M \
        'BEGIN { printf "%s %.0f %.2f\n", l, m / (e - s), (c1 - c0) / t / m * 1e6 }' >>"$WORK/drains"
}

# rate_of LABEL / cpu_of LABEL: from $WORK/drains.
rate_of() { awk -v l="$1" '$1 == l { print $2 }' "$WORK/drains"; }
cpu_of() { awk -v l="$1" '$1 == l { print $3 }' "$WORK/drains"; }

: >"$WORK/drains"
drain quiet
drain flood flood 10000
drain slow slowloris 40 8
drain junk garbage 3000
for f in flood slow junk; do echo "#   $(cat "$WORK/abuse-$f.out")"; done
echo "#   drain of $M jobs, jobs/s and the loop's CPU us/job: quiet $(rate_of quiet) at $(cpu_of quiet); flood $(rate_of flood) at $(cpu_of flood); slowloris $(rate_of slow) at $(cpu_of slow); garbage $(rate_of junk) at $(cpu_of junk)"
# The loop never waits for the HTTP thread, but on two shared cores a
# bad client still costs it some CPU per job (caches, the scheduler):
# 1.06 to 1.28 times the quiet run in four CI runs, then 1.40 (flood) and
# 1.37 (garbage) in one.  This bound only catches a gross regression (the
# loop doing the HTTP work itself); the figures are printed for the reader.
for label in flood slow junk; do
    check "the job loop's CPU per job with $label beside it within 2x of quiet ($(cpu_of $label) vs $(cpu_of quiet) us)" \
        awk -v a="$(cpu_of $label)" -v b="$(cpu_of quiet)" 'BEGIN { exit !(a > 0 && a <= b * 2) }'
done
check_match "the flood was served" "$(cat "$WORK/abuse-flood.out")" 'flood: 10000 requests, 10000 answered 200'
check_match "a slowloris client holds 8 connections at most (the rest closed at once)" \
    "$(cat "$WORK/abuse-slow.out")" 'slowloris: 40 connections, 0 refused at once, 32 closed by the server .*, 8 still open after'
for label in flood slow junk; do
    check_eq "a probe from another client during the $label answered 200" "$(cat "$WORK/probe-$label")" 200
done
check "no sanitizer report in any worker log" no_sanitizer_report "$WORK"/*.log

tests_summary
