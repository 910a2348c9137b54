#!/usr/bin/env bash
# make bench: the worker's throughput and latency, next to a broker-only
# baseline measured in the same run on the same servers (the machine is
# shared and noisy: only ratios within one run mean much).
#
#   BENCH_JOBS=50000 BENCH_RUNS=3 bench/run.sh        (the defaults)
#   BENCH_SMOKE=1 bench/run.sh                         (seconds; part of make test)
#   BENCH_PREFETCH="50 200 1000" bench/run.sh --sweep  (prefetch curve)
#
# Prints a table and writes it as JSON to bench/results/.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${GREET_BIN:-$ROOT/bin}
TOOLS=${GREET_TOOLS:-$ROOT/build/release/tests}
BASELINE=${GREET_BASELINE:-$ROOT/build/release/bench/baseline}
. "$ROOT/scripts/lib/servers.sh"
. "$ROOT/scripts/lib/tls.sh"

if [ -n "${BENCH_SMOKE:-}" ]; then
    JOBS=${BENCH_JOBS:-3000}
    RUNS=${BENCH_RUNS:-1}
    LATENCY_JOBS=500
else
    JOBS=${BENCH_JOBS:-50000}
    RUNS=${BENCH_RUNS:-3}
    LATENCY_JOBS=10000
fi
USERS=10000
SWEEP=""
[ "${1:-}" = "--sweep" ] && SWEEP=1
PREFETCH_DEFAULT=$("$BIN/greet-worker" --help | sed -n 's/.*GREET_PREFETCH\] (default \([0-9]*\)).*/\1/p')
PREFETCHES=${BENCH_PREFETCH:-$PREFETCH_DEFAULT}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/greet-bench.XXXXXX")
chmod 755 "$WORK"
WORKER_PIDS=()
cleanup() {
    local pid
    for pid in "${WORKER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${WORKER_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    servers_stop
    [ -z "${KEEP_WORK:-}" ] && rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
export GREET_STATS_INTERVAL=0 GREET_LOG_LEVEL=warn

# Both servers also listen with TLS (a throwaway CA and a certificate for
# localhost), for the row over amqps:// and sslmode=verify-full.
echo "# starting RabbitMQ and PostgreSQL (plain and TLS listeners); loading $USERS users"
SERVERS_DIR=$WORK/servers
servers_prepare_dir "$SERVERS_DIR" && mkdir -p "$WORK/certs" &&
    tls_ca "$WORK/certs" ca && tls_sign "$WORK/certs" server ca /CN=localhost server &&
    tls_servers "$WORK/certs" "$WORK/rabbit-tls" "$WORK/pg-tls" &&
    pg_start && rabbit_start || exit 1
servers_load_schema || exit 1
psql_ -c "INSERT INTO user_preferences (user_id, display_name, language, formality)
          SELECT i, 'User ' || i, (ARRAY['en','fr','de','es','ja','pt'])[1 + i % 6],
                 (ARRAY['casual','formal'])[1 + i % 2]
          FROM generate_series(1, $USERS) AS i" >/dev/null || exit 1
"$BIN/greet-producer" --count 1 --id-prefix warmup >/dev/null 2>&1 # declares the topology
"$TOOLS/mqtool" purge greet.jobs greet.replies >/dev/null

# Authenticated jobs (GREET_AUTH=jwt): an HMAC secret, an ES256 pair.  The
# rows with tokens fill the queue with signed jobs (FILL_ARGS) and run the
# worker with the settings that check them (WORKER_ENV).
head -c 32 /dev/urandom >"$WORK/hs.key"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/es.pem" 2>/dev/null &&
    openssl pkey -in "$WORK/es.pem" -pubout -out "$WORK/es.pub" 2>/dev/null || exit 1
FILL_ARGS=()
WORKER_ENV=()

median() { # median NUMBER...
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# fill: JOBS jobs in the jobs queue, no consumer yet.
fill() {
    "$TOOLS/mqtool" purge greet.jobs greet.replies >/dev/null
    "$BIN/greet-producer" --count "$JOBS" --users "${FILL_USERS:-$USERS}" "${FILL_ARGS[@]}" \
        >/dev/null 2>"$WORK/fill.err" ||
        { cat "$WORK/fill.err"; exit 1; }
}

# cpu_seconds PID: user + system time so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$1/stat"
}

peak_rss_kib() {
    awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"
}

# drain_baseline PREFETCH: prints "jobs/s cpu-per-job-us".
drain_baseline() {
    local elapsed cpu
    fill
    "$TOOLS/mqtool" wait greet.replies "$JOBS" 300 >"$WORK/wait.out" &
    local waiter=$!
    "$BASELINE" greet.jobs greet.replies "$JOBS" "$1" >"$WORK/baseline.out" || exit 1
    wait "$waiter" || { echo "baseline: replies missing" >&2; exit 1; }
    elapsed=$(cat "$WORK/wait.out")
    cpu=$(awk '{ print $3 }' "$WORK/baseline.out")
    awk -v n="$JOBS" -v t="$elapsed" -v c="$cpu" 'BEGIN { printf "%.0f %.1f", n / t, c / n * 1e6 }'
}

# drain_workers COUNT PREFETCH [SCRAPES]: prints "jobs/s cpu-per-job-us
# peak-rss-kib".  With SCRAPES, each worker serves its metrics port and a
# scraper asks for /metrics SCRAPES times a second throughout.
drain_workers() {
    local count=$1 prefetch=$2 scrapes=${3:-} elapsed cpu=0 rss=0 pid n port scrapers=()
    fill
    "$TOOLS/mqtool" wait greet.replies "$JOBS" 300 >"$WORK/wait.out" &
    local waiter=$!
    WORKER_PIDS=()
    for n in $(seq 1 "$count"); do
        port=""
        [ -n "$scrapes" ] && port=$(free_port)
        env "${WORKER_ENV[@]}" GREET_PREFETCH=$prefetch GREET_BATCH_MAX=$prefetch \
            GREET_HTTP_ADDR=${port:+127.0.0.1:$port} "$BIN/greet-worker" >>"$WORK/worker.log" 2>&1 &
        WORKER_PIDS+=($!)
        if [ -n "$scrapes" ]; then
            "$TOOLS/httpabuse" "$port" scrape "$scrapes" >>"$WORK/scrape.out" 2>&1 &
            scrapers+=($!)
        fi
    done
    wait "$waiter" || { echo "workers: replies missing" >&2; exit 1; }
    for pid in "${scrapers[@]}"; do kill -TERM "$pid" && wait "$pid"; done
    elapsed=$(cat "$WORK/wait.out")
    for pid in "${WORKER_PIDS[@]}"; do
        cpu=$(awk -v a="$cpu" -v b="$(cpu_seconds "$pid")" 'BEGIN { print a + b }')
        n=$(peak_rss_kib "$pid")
        [ "$n" -gt "$rss" ] && rss=$n
        kill -TERM "$pid"
    done
    for pid in "${WORKER_PIDS[@]}"; do wait "$pid"; done
    WORKER_PIDS=()
    awk -v n="$JOBS" -v t="$elapsed" -v c="$cpu" -v r="$rss" \
        'BEGIN { printf "%.0f %.1f %d", n / t, c / n * 1e6, r }'
}

# latency RATE PREFETCH: one worker, open loop; prints "p50 p95 p99 max" (ms).
latency() {
    local rate=$1 prefetch=$2 summary
    "$TOOLS/mqtool" purge greet.jobs greet.replies >/dev/null
    GREET_PREFETCH=$prefetch GREET_BATCH_MAX=$prefetch "$BIN/greet-worker" >>"$WORK/worker.log" 2>&1 &
    WORKER_PIDS=($!)
    sleep 0.3
    "$BIN/greet-producer" --count "$LATENCY_JOBS" --users "$USERS" --rate "$rate" --wait --timeout 120 \
        >/dev/null 2>"$WORK/latency.err"
    summary=$(tail -n 1 "$WORK/latency.err")
    kill -TERM "${WORKER_PIDS[0]}" && wait "${WORKER_PIDS[0]}"
    WORKER_PIDS=()
    sed -n 's/.*latency ms p50 \([0-9.]*\) p95 \([0-9.]*\) p99 \([0-9.]*\) max \([0-9.]*\).*/\1 \2 \3 \4/p' \
        <<<"$summary"
}

# drain_signed ALG PREFETCH [USERS]: drain_workers 1 PREFETCH on jobs
# signed with ALG (HS256 or ES256), checked by the worker (GREET_AUTH=jwt),
# spread over USERS users (default: all of them), so over as many tokens.
drain_signed() {
    local key=$WORK/hs.key public=$WORK/hs.key FILL_USERS=${3:-$USERS}
    if [ "$1" = ES256 ]; then
        key=$WORK/es.pem public=$WORK/es.pub
    fi
    local refused
    FILL_ARGS=(--jwt-key "$key" --jwt-alg "$1")
    WORKER_ENV=(GREET_AUTH=jwt GREET_JWT_KEY_FILE="$public" GREET_JWT_ALG="$1")
    refused=$(grep -c 'event=job.poison' "$WORK/worker.log")
    drain_workers 1 "$2"
    FILL_ARGS=()
    WORKER_ENV=()
    # Refused jobs are answered too, faster: the rate would be of those.
    if [ "$(grep -c 'event=job.poison' "$WORK/worker.log")" != "$refused" ]; then
        echo "bench: the worker refused $1 tokens:" >&2
        grep 'event=job.poison' "$WORK/worker.log" | tail -n 3 >&2
        exit 1
    fi
}

# drain_link tcp|tls PREFETCH: drain_workers 1 PREFETCH with the worker
# on loopback TCP to both servers, plain or TLS (amqps://, verify-full);
# the jobs are queued over the default link.
drain_link() {
    if [ "$1" = tls ]; then
        WORKER_ENV=(AMQP_URL="$(tls_amqp_url)" AMQP_CACERT="$TLS_CA" DATABASE_URL="$(tls_database_url)")
    else
        WORKER_ENV=(AMQP_URL="$(tcp_amqp_url)" DATABASE_URL="$(tcp_database_url)")
    fi
    drain_workers 1 "$2"
    WORKER_ENV=()
}

measure() { # measure PREFETCH: fills the RESULT_* variables (medians of RUNS)
    local prefetch=$1 run b=() cb=() w1=() c1=() r1=() w2=() c2=() r2=() ws=() cs=()
    local wh=() ch=() we=() ce=() wn=() cn=() wp=() cp=() wt=() ct=()
    for run in $(seq 1 "$RUNS"); do
        read -r t c <<<"$(drain_baseline "$prefetch")"
        b+=("$t") cb+=("$c")
        read -r t c r <<<"$(drain_workers 1 "$prefetch")"
        w1+=("$t") c1+=("$c") r1+=("$r")
        read -r t c r <<<"$(drain_workers 2 "$prefetch")"
        w2+=("$t") c2+=("$c") r2+=("$r")
        read -r t c r <<<"$(drain_workers 1 "$prefetch" 100)"
        ws+=("$t") cs+=("$c")
        read -r t c r <<<"$(drain_signed HS256 "$prefetch")"
        wh+=("$t") ch+=("$c")
        # The worker remembers 4096 tokens that verified: a token per user
        # of 1000, as a producer that reuses its tokens sends them, is
        # checked once each; of 10000, nearly every job's signature is
        # checked (an ES256 verification, about 60 us here).
        read -r t c r <<<"$(drain_signed ES256 "$prefetch" 1000)"
        we+=("$t") ce+=("$c")
        read -r t c r <<<"$(drain_signed ES256 "$prefetch" 10000)"
        wn+=("$t") cn+=("$c")
        read -r t c r <<<"$(drain_link tcp "$prefetch")"
        wp+=("$t") cp+=("$c")
        read -r t c r <<<"$(drain_link tls "$prefetch")"
        wt+=("$t") ct+=("$c")
        echo "#   run $run, prefetch $prefetch: baseline ${b[-1]}/s, 1 worker ${w1[-1]}/s, 2 workers ${w2[-1]}/s, 1 worker scraped 100/s ${ws[-1]}/s ($(tail -n 1 "$WORK/scrape.out")), 1 worker with tokens: HS256 ${wh[-1]}/s, ES256 (1000 users) ${we[-1]}/s, ES256 (10000 users) ${wn[-1]}/s; 1 worker over TCP ${wp[-1]}/s, over TLS ${wt[-1]}/s"
    done
    RESULT_BASE=$(median "${b[@]}") RESULT_CB=$(median "${cb[@]}")
    RESULT_W1=$(median "${w1[@]}") RESULT_C1=$(median "${c1[@]}") RESULT_R1=$(median "${r1[@]}")
    RESULT_W2=$(median "${w2[@]}") RESULT_C2=$(median "${c2[@]}") RESULT_R2=$(median "${r2[@]}")
    RESULT_WS=$(median "${ws[@]}") RESULT_CS=$(median "${cs[@]}")
    RESULT_WH=$(median "${wh[@]}") RESULT_CH=$(median "${ch[@]}")
    RESULT_WE=$(median "${we[@]}") RESULT_CE=$(median "${ce[@]}")
    RESULT_WN=$(median "${wn[@]}") RESULT_CN=$(median "${cn[@]}")
    RESULT_WP=$(median "${wp[@]}") RESULT_CP=$(median "${cp[@]}")
    RESULT_WT=$(median "${wt[@]}") RESULT_CT=$(median "${ct[@]}")
}

measure_latency() { # measure_latency RATE PREFETCH: RESULT_LAT="p50 p95 p99 max", medians
    local rate=$1 prefetch=$2 run p50=() p95=() p99=() max=()
    for run in $(seq 1 "$RUNS"); do
        read -r a b c d <<<"$(latency "$rate" "$prefetch")"
        p50+=("$a") p95+=("$b") p99+=("$c") max+=("$d")
    done
    RESULT_LAT="$(median "${p50[@]}") $(median "${p95[@]}") $(median "${p99[@]}") $(median "${max[@]}")"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

mkdir -p "$ROOT/bench/results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
JSON="$ROOT/bench/results/bench-$STAMP.json"
ROWS=()

for prefetch in $PREFETCHES; do
    echo "# prefetch $prefetch: $RUNS run(s) of $JOBS pre-filled jobs"
    measure "$prefetch"
    half=$(awk -v w="$RESULT_W1" 'BEGIN { printf "%d", w / 2 / 100 * 100 }')
    [ "$half" -lt 1000 ] && half=1000
    measure_latency 1000 "$prefetch"
    lat1000=$RESULT_LAT
    measure_latency "$half" "$prefetch"
    lathalf=$RESULT_LAT
    ROWS+=("$prefetch $RESULT_BASE $RESULT_CB $RESULT_W1 $RESULT_C1 $RESULT_R1 $RESULT_W2 $RESULT_C2 $RESULT_R2 $half $lat1000 $lathalf $RESULT_WS $RESULT_CS $RESULT_WH $RESULT_CH $RESULT_WE $RESULT_CE $RESULT_WN $RESULT_CN $RESULT_WP $RESULT_CP $RESULT_WT $RESULT_CT")
done

printf '\n%s jobs per drain, median of %s run(s); latency: %s jobs open loop, 1 worker\n\n' "$JOBS" "$RUNS" "$LATENCY_JOBS"
table_row() {
    printf '%-9s %-21s %8s %6s %11s %13s  %-26s %s\n' "$@"
}
table_row prefetch what jobs/s ratio "cpu us/job" "peak RSS KiB" "latency ms @1000/s" "latency ms @half max"
table_row "" "" "" "" "" "" "p50/p95/p99/max" "p50/p95/p99/max"
printf '{"date":"%s","jobs":%s,"runs":%s,"latency_jobs":%s,"rows":[' "$STAMP" "$JOBS" "$RUNS" "$LATENCY_JOBS" >"$JSON"
separator=""
for row in "${ROWS[@]}"; do
    read -r p base cb w1 c1 r1 w2 c2 r2 half a50 a95 a99 amax h50 h95 h99 hmax ws cs wh ch we ce wn cn wp cp wt ct <<<"$row"
    table_row "$p" "broker-only baseline" "$base" "1.00" "$cb" "" "" ""
    table_row "" "1 worker" "$w1" "$(ratio "$w1" "$base")" "$c1" "$r1" "$a50/$a95/$a99/$amax" \
        "$h50/$h95/$h99/$hmax (at $half/s)"
    table_row "" "2 workers" "$w2" "$(ratio "$w2" "$base")" "$c2" "$r2" "" ""
    table_row "" "1 worker, scraped" "$ws" "$(ratio "$ws" "$base")" "$cs" "" \
        "/metrics 100 times a second:" "$(ratio "$ws" "$w1") of the unscraped worker's rate"
    table_row "" "1 worker, jwt HS256" "$wh" "$(ratio "$wh" "$base")" "$ch" "" \
        "tokens of 10000 users:" "$(ratio "$wh" "$w1") of the rate without tokens"
    table_row "" "1 worker, jwt ES256" "$we" "$(ratio "$we" "$base")" "$ce" "" \
        "tokens of 1000 users:" "$(ratio "$we" "$w1") of the rate without tokens"
    table_row "" "1 worker, jwt ES256" "$wn" "$(ratio "$wn" "$base")" "$cn" "" \
        "tokens of 10000 users:" "$(ratio "$wn" "$w1") of the rate without tokens"
    table_row "" "1 worker, TCP" "$wp" "$(ratio "$wp" "$base")" "$cp" "" \
        "both servers on 127.0.0.1," "no TLS"
    table_row "" "1 worker, TLS" "$wt" "$(ratio "$wt" "$base")" "$ct" "" \
        "amqps://, verify-full:" "$(ratio "$wt" "$wp") of the rate over plain TCP"
    {
        printf '%s{"prefetch":%s,"baseline_jobs_per_s":%s,"baseline_cpu_us_per_job":%s,' "$separator" "$p" "$base" "$cb"
        printf '"worker1_jobs_per_s":%s,"worker1_ratio":%s,"worker1_cpu_us_per_job":%s,"worker1_peak_rss_kib":%s,' \
            "$w1" "$(ratio "$w1" "$base")" "$c1" "$r1"
        printf '"worker2_jobs_per_s":%s,"worker2_ratio":%s,"worker2_cpu_us_per_job":%s,"worker2_peak_rss_kib":%s,' \
            "$w2" "$(ratio "$w2" "$base")" "$c2" "$r2"
        printf '"worker1_scraped_jobs_per_s":%s,"worker1_scraped_cpu_us_per_job":%s,"scraped_to_unscraped":%s,' \
            "$ws" "$cs" "$(ratio "$ws" "$w1")"
        printf '"worker1_hs256_jobs_per_s":%s,"worker1_hs256_cpu_us_per_job":%s,"hs256_to_no_tokens":%s,' \
            "$wh" "$ch" "$(ratio "$wh" "$w1")"
        printf '"worker1_es256_jobs_per_s":%s,"worker1_es256_cpu_us_per_job":%s,"es256_to_no_tokens":%s,' \
            "$we" "$ce" "$(ratio "$we" "$w1")"
        printf '"worker1_es256_10000_jobs_per_s":%s,"worker1_es256_10000_cpu_us_per_job":%s,' "$wn" "$cn"
        printf '"es256_10000_to_no_tokens":%s,' "$(ratio "$wn" "$w1")"
        printf '"worker1_tcp_jobs_per_s":%s,"worker1_tcp_cpu_us_per_job":%s,' "$wp" "$cp"
        printf '"worker1_tls_jobs_per_s":%s,"worker1_tls_cpu_us_per_job":%s,"tls_to_tcp":%s,' \
            "$wt" "$ct" "$(ratio "$wt" "$wp")"
        printf '"latency_ms_at_1000":{"p50":%s,"p95":%s,"p99":%s,"max":%s},' "$a50" "$a95" "$a99" "$amax"
        printf '"latency_rate_half":%s,"latency_ms_at_half":{"p50":%s,"p95":%s,"p99":%s,"max":%s}}' \
            "$half" "$h50" "$h95" "$h99" "$hmax"
    } >>"$JSON"
    separator=","
done
printf ']}\n' >>"$JSON"
echo
echo "written: ${JSON#$ROOT/}"
