# scenario.sh - the machinery of the fault suites (tests/faults,
# tests/cluster): workers under a supervisor, a sampler of the replies
# published, scenarios that drain jobs through a fault and are judged by
# tests/tools/historycheck, and the drain-rate and reconnect checks.
#
# The sourcing suite sets WORK (its scratch dir), BIN and TOOLS (the
# programs and test tools), RATE_MIN, and the servers' environment
# (AMQP_URL, DATABASE_URL); testlib.sh comes first.  The current scenario
# lives in SC (its dir) and SC_NAME.

# FAULT_ONLY="kill9 crash_loop" runs just those scenarios.
want() {
    [ -z "${FAULT_ONLY:-}" ] || [[ " $FAULT_ONLY " == *" $1 "* ]]
}

# run_low_rates_again FUNCTION: runs the suite's scenarios (FUNCTION, whose
# blocks each begin "if want NAME") once more, only those whose drain rate
# came back low (check_drain_rate); low twice fails.
run_low_rates_again() {
    [ -s "$WORK/rate_again" ] || return 0
    echo "# the drain rate came back low in: $(tr '\n' ' ' <"$WORK/rate_again"); measuring them once more"
    RATE_AGAIN=1 FAULT_ONLY="$(tr '\n' ' ' <"$WORK/rate_again")" "$1"
}

SUPERVISORS=()
WORKER_ENV=()
WATCHER=""
PRODUCER=""

# now: wall-clock seconds, as the workers' log lines and the samplers give
# them.
now() {
    echo "${EPOCHREALTIME/,/.}"
}

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
    WORKER_ENV=("$@")
    for n in $(seq 1 "$count"); do
        # The supervisor's own stderr is a file: bash's notice of a child
        # killed on purpose ("Killed", "Aborted") is no test output.
        supervise "w$n" "$@" 2>>"$SC/w$n.supervisor" &
        SUPERVISORS+=($!)
    done
    for n in $(seq 1 "$count"); do
        wait_for 20 grep -q 'event=consumer.started' "$SC/w$n.log" || return 1
    done
}

# start_helpers COUNT: more workers, h1..hCOUNT, configured as the
# scenario's (see help_slow_drain).
start_helpers() {
    local n
    for n in $(seq 1 "$1"); do
        supervise "h$n" "${WORKER_ENV[@]}" 2>>"$SC/h$n.supervisor" &
        SUPERVISORS+=($!)
    done
}

worker_pid() {
    cat "$SC/$1.pid"
}

stop_workers() {
    local pid file
    [ -n "${SC:-}" ] && touch "$SC/stop"
    for file in "${SC:-/nonexistent}"/w*.pid "${SC:-/nonexistent}"/h*.pid; do
        [ -e "$file" ] && kill -TERM "$(cat "$file")" 2>/dev/null
    done
    for pid in "${SUPERVISORS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    SUPERVISORS=()
}

# ---- sampling, for the rates -------------------------------------------------

# From scenario_begin to scenario_end, every 0.1 s, $SC/samples gets a
# line "EPOCH REPLIES": the replies queued so far -- nothing reads them
# before the end, so that is what the workers have done, and no reader
# takes CPU from them meanwhile.  Every 0.5 s the line has two more
# fields, "BUSY OURS": the CPU seconds the machine has spent, and those
# of this suite's processes (its own tree, and the servers in $WORK) --
# the rest went to other work on the machine.  One cheap process, mqtool
# watch, takes them all.
sampler_start() {
    : >"$SC/samples"
    "$TOOLS/mqtool" watch greet.replies 0.1 "$WORK" >>"$SC/samples" 2>"$SC/watch.err" &
    WATCHER=$!
}

sampler_stop() {
    [ -n "$WATCHER" ] && kill -TERM "$WATCHER" 2>/dev/null && wait "$WATCHER" 2>/dev/null
    WATCHER=""
}

# replies_now: the replies the workers have published so far (duplicates
# count: they are rare before a fault).
replies_now() {
    local time replies rest
    read -r time replies rest < <(tail -n 1 "$SC/samples" 2>/dev/null)
    echo "${replies:-0}"
}

# wait_progress N SECONDS: until the workers have published N replies.
wait_progress() {
    local want=$1 limit=$2 start=$SECONDS
    while [ "$(replies_now)" -lt "$want" ]; do
        [ $((SECONDS - start)) -ge "$limit" ] && return 1
        sleep 0.1
    done
}

# mark NAME: the time of a moment of the scenario, in $SC/marks.
mark() {
    echo "$1 $(now)" >>"$SC/marks"
}

marked() {
    awk -v name="$1" '$1 == name { print $2; exit }' "$SC/marks"
}

# first_consumer_start FROM TO: the first consumer.started any worker
# logged between the epochs FROM and TO; nothing when none did.
first_consumer_start() {
    grep -h 'event=consumer\.started' "$SC"/w*.log 2>/dev/null |
        sed -n 's/^ts=\([0-9T:.-]*\)Z .*/\1/p' | date -u -f - +%s.%N 2>/dev/null |
        awk -v from="$1" -v to="$2" '$1 >= from && $1 <= to && (m == "" || $1 < m) { m = $1 }
                                     END { if (m != "") printf "%.3f\n", m }'
}

# check_drain_rate: the rate at which the workers drained the backlog
# after the fault, next to the rate before it (same run, same machine).
#   before: from RATE_FROM replies (the workers warmed up) to the mark
#           fault_begin (the fault not yet injected);
#   after:  from the moment the workers consume again -- the fault over
#           (mark fault_end) and the first consumer.started logged since
#           the fault began, plus RATE_SETTLE s for the redelivered jobs
#           (processed one at a time) -- until RATE_TO replies (the
#           backlog not yet drained: the workers, not the producer, set
#           the pace) or RATE_AFTER_MAX s later.
# A window's rate is the upper quartile of its rates over 0.25 s steps: a
# worker slowed for good shows in every step, while the broker's own
# stalls on a shared two-core machine (a quorum queue writing its log,
# the database's checkpoints) take out a few steps -- once, in a CI run,
# more than half of a 5 s window, which failed a median at 0.56 with the
# worker consuming normally.  The means are printed too.  Fails when after/before < RATE_MIN, or when a window
# is shorter than RATE_MIN_WINDOW s (a rate that was not measured proves
# nothing).  On two cores the rates are the CPU's: when other work on the
# machine (not this suite's) took more than RATE_MAX_OTHER_CPU cores in a
# window, the comparison says nothing and is skipped, and says so.
RATE_SETTLE=${FAULT_RATE_SETTLE:-1}
RATE_AFTER_MAX=${FAULT_RATE_AFTER_MAX:-5}
RATE_MIN_WINDOW=${FAULT_RATE_MIN_WINDOW:-0.8}
RATE_MAX_OTHER_CPU=${FAULT_RATE_MAX_OTHER_CPU:-0.3}

# after_window_start: when the after window begins, as far as the logs
# tell now.
after_window_start() {
    local fault_begin fault_end resumed
    fault_begin=$(marked fault_begin)
    fault_end=$(marked fault_end)
    resumed=$(first_consumer_start "$fault_begin" "$(awk -v t="$fault_end" 'BEGIN { printf "%.3f", t + 10 }')")
    awk -v fe="$fault_end" -v resumed="${resumed:-0}" -v settle="$RATE_SETTLE" \
        'BEGIN { printf "%.3f\n", (resumed > fe ? resumed : fe) + settle }'
}

check_drain_rate() {
    local fault_begin fault_end verdict
    fault_begin=$(marked fault_begin)
    fault_end=$(marked fault_end)
    if [ -z "$fault_begin" ] || [ -z "$fault_end" ]; then
        check "$SC_NAME: drain rate measured (the fault was not marked)" false
        return
    fi
    verdict=$(awk -v fb="$fault_begin" -v fe="$fault_end" -v a0="$(after_window_start)" \
        -v after_max="$RATE_AFTER_MAX" -v from="$RATE_FROM" -v to="$RATE_TO" \
        -v min_window="$RATE_MIN_WINDOW" -v min_ratio="$RATE_MIN" -v max_other="$RATE_MAX_OTHER_CPU" \
        -v step=0.25 '
        # replies published by time t: linear between samples, flat past the ends
        function done(t,    lo, hi, mid) {
            if (t <= T[1]) return V[1]
            if (t >= T[n]) return V[n]
            lo = 1; hi = n
            while (hi - lo > 1) { mid = int((lo + hi) / 2); if (T[mid] <= t) lo = mid; else hi = mid }
            if (T[hi] == T[lo]) return V[lo]
            return V[lo] + (V[hi] - V[lo]) * (t - T[lo]) / (T[hi] - T[lo])
        }
        # upper quartile of the rates over the steps of [t0, t1] (the last step ends at t1)
        function typical_rate(t0, t1,    k, m, t, u, r, i, j, x, q) {
            m = int((t1 - t0) / step + 0.5)
            if (m < 1) m = 1
            for (k = 1; k <= m; k++) {
                t = t0 + (k - 1) * (t1 - t0) / m; u = t0 + k * (t1 - t0) / m
                x = (done(u) - done(t)) / (u - t)
                for (j = k - 1; j >= 1 && r[j] > x; j--) r[j + 1] = r[j]
                r[j + 1] = x
            }
            q = int(m * 0.75)
            return r[q < 1 ? 1 : q]
        }
        # cores taken by other work than this suite over [t0, t1], from the
        # CPU samples inside it only: a server stopped by a fault takes its
        # CPU seconds from the sum of ours, and that must not leak in
        function other(t0, t1,    i, first, last) {
            for (i = 1; i <= c; i++) if (C[i] >= t0 && C[i] <= t1) { if (!first) first = i; last = i }
            if (!first || C[last] - C[first] < 0.4) return 0
            return (X[last] - X[first]) / (C[last] - C[first])
        }
        NF >= 2 { n++; T[n] = $1 + 0; V[n] = $2 + 0 }
        NF == 4 { c++; C[c] = $1 + 0; X[c] = $3 - $4 }
        END {
            if (n == 0) { print "cannot measure the rates: no samples"; exit }
            b0 = 0
            for (i = 1; i <= n; i++) if (V[i] >= from) { b0 = T[i]; break }
            a1 = a0 + after_max
            for (i = 1; i <= n; i++) if (T[i] > a0 && V[i] >= to) { if (T[i] < a1) a1 = T[i]; break }
            if (T[n] < a1) a1 = T[n]
            if (b0 == 0 || fb - b0 < min_window) {
                printf "cannot measure the rate before the fault: %.2f s of backlog draining before it\n", (b0 ? fb - b0 : 0)
                exit
            }
            if (a1 - a0 < min_window) {
                printf "cannot measure the rate after the fault: %.2f s of backlog left to drain after it\n", a1 - a0
                exit
            }
            before = typical_rate(b0, fb)
            after = typical_rate(a0, a1)
            ratio = before > 0 ? after / before : 0
            other_before = other(b0, fb)
            other_after = other(a0, a1)
            printf "before %.0f/s (%d replies in %.2f s, mean %.0f/s), after %.0f/s (%d replies in %.2f s from %.2f s after the fault, mean %.0f/s), ratio %.2f; other work on the machine: %.2f and %.2f cores\n",
                before, done(fb) - done(b0), fb - b0, (done(fb) - done(b0)) / (fb - b0),
                after, done(a1) - done(a0), a1 - a0, a0 - fe, (done(a1) - done(a0)) / (a1 - a0), ratio,
                other_before, other_after
            if (other_before > max_other || other_after > max_other)
                printf "busy other work on the machine took %.2f cores before the fault and %.2f after it (more than %s): the rates are not comparable\n",
                    other_before, other_after, max_other
            else
                print (ratio >= min_ratio ? "ok" : "low")
        }' "$SC/samples")
    echo "#   drain rate: $(head -n 1 <<<"$verdict")"
    if [[ "$(sed -n 2p <<<"$verdict")" == busy\ * ]]; then
        skip "$SC_NAME: drain rate after recovery at least $RATE_MIN of the rate before" \
            "$(sed -n '2s/^busy //p' <<<"$verdict")"
        return
    fi
    # Once low proves nothing: RabbitMQ itself drains a backlog up to a
    # third slower for seconds after its consumers paused, broker-only
    # clients too (two bench/baseline clients stopped for 10 s: 0.62, 0.71
    # and 0.97 of their rate before; not stopped: 0.87 to 0.96).  A worker
    # slowed for good is slow in every run, so a low scenario runs again
    # at the end, and fails if it is low again.
    if [ "$(sed -n 2p <<<"$verdict")" = low ] && [ -z "${RATE_AGAIN:-}" ]; then
        skip "$SC_NAME: drain rate after recovery at least $RATE_MIN of the rate before" \
            "low once: $SC_NAME runs again at the end and must not be low twice"
        echo "$SC_NAME" >>"$WORK/rate_again"
        return
    fi
    check_eq "$SC_NAME: drain rate after recovery at least $RATE_MIN of the rate before" \
        "$(sed -n 2p <<<"$verdict")" ok
}

# help_slow_drain EXPECTED: once the after window is over (RATE_TO replies,
# or RATE_AFTER_MAX s after it began), the rest of the backlog only makes
# the scenario wait.  Workers slowed for good would take minutes over it:
# when they need more than 15 s at their pace of the last second, two
# fresh workers (which hold no redelivered job) finish it.  Only the end of
# the drain is theirs: the rate was measured before they came, and every
# other check still judges the whole history.
help_slow_drain() {
    local expected=$1 replies rate
    [ -n "$RATE_TO" ] && [ -n "$(marked fault_end)" ] || return 0
    until [ "$(replies_now)" -ge "$RATE_TO" ]; do
        if awk -v a0="$(after_window_start)" -v max="$RATE_AFTER_MAX" -v t="$(now)" \
            'BEGIN { exit !(t >= a0 + max) }'; then
            replies=$(replies_now)
            sleep 1
            rate=$(($(replies_now) - replies))
            replies=$((replies + rate))
            if [ $((expected - replies)) -gt $((rate * 15 + 1000)) ]; then
                echo "#   the workers drain $rate jobs/s: two more finish the last $((expected - replies))"
                start_helpers 2
            fi
            return 0
        fi
        sleep 0.2
    done
}

# reconnect_counts: "RECONNECTS LOST PROCESSES" over the scenario's worker
# logs: broker.connected lines beyond the first of each worker process,
# broker.lost lines, worker processes.
reconnect_counts() {
    cat "$SC"/w*.log 2>/dev/null | awk '
        match($0, / pid=[0-9]+ /) {
            pid = substr($0, RSTART + 5, RLENGTH - 6)
            procs[pid] = 1
            if ($0 ~ / event=broker\.connected /) connected[pid]++
            if ($0 ~ / event=broker\.lost /) lost++
        }
        END {
            for (p in connected) if (connected[p] > 1) reconnects += connected[p] - 1
            for (p in procs) n++
            printf "%d %d %d\n", reconnects, lost, n
        }'
}

# check_reconnects MAX: at most MAX reconnects and MAX lost connections
# (over all workers): a fault costs each worker one reconnect, maybe two;
# a reconnect loop fails.
check_reconnects() {
    local reconnects lost procs
    read -r reconnects lost procs < <(reconnect_counts)
    check "$SC_NAME: at most $1 reconnects (made $reconnects, broker.lost $lost)" \
        test "$reconnects" -le "$1" -a "$lost" -le "$1"
}

# check_back_within EVENT LIMIT WHAT: every worker logged EVENT (e.g.
# broker.connected) within LIMIT s of the fault's end (mark fault_end,
# the server back).  A worker that backs off for half a minute after a
# long outage loses nothing and keeps the counts right, yet sits idle
# while the backlog grows: only its delay shows it.
check_back_within() {
    local fault_begin fault_end log name delay delays="" late=0
    fault_begin=$(marked fault_begin)
    fault_end=$(marked fault_end)
    for log in "$SC"/w*.log; do
        name=$(basename "$log" .log)
        delay=$(grep -h "event=${1//./\\.} " "$log" |
            sed -n 's/^ts=\([0-9T:.-]*\)Z .*/\1/p' | date -u -f - +%s.%N 2>/dev/null |
            awk -v fb="$fault_begin" -v fe="$fault_end" \
                '$1 > fb { printf "%.2f\n", $1 - fe; exit }')
        delays="$delays $name ${delay:-never}"
        if [ -z "$delay" ] || awk -v d="$delay" -v l="$2" 'BEGIN { exit !(d > l) }'; then
            late=$((late + 1))
        fi
    done
    echo "#   $1 after the fault's end (s):$delays"
    check "$SC_NAME: every worker $3 within $2 s of the server's return" test "$late" -eq 0
}

# ---- a scenario -----------------------------------------------------------

# scenario_begin NAME: a fresh directory, empty queues, the sampler
# running.
scenario_begin() {
    SC_NAME=$1
    SC="$WORK/$1${RATE_AGAIN:+.again}"
    mkdir -p "$SC"
    : >"$SC/sent" && : >"$SC/poison" && : >"$SC/crash" && : >"$SC/marks"
    PRODUCER=""
    RATE_TO=""
    "$TOOLS/mqtool" purge greet.jobs greet.replies greet.dead >/dev/null
    sampler_start
    echo "# scenario $SC_NAME"
}

# produce_synthetic COUNT [RATE [PREFIX]]: COUNT jobs, ids PREFIX-1..
# PREFIX-COUNT (PREFIX: the scenario's name), in the background; paced at
# RATE jobs/s when given, so that the producer too is mid-stream when the
# fault comes (it must ride out broker faults).
produce_synthetic() {
    local prefix=${3:-$SC_NAME}
    seq -f "$prefix-%.0f" 1 "$1" >>"$SC/sent"
    "$BIN/greet-producer" --count "$1" --users 12 --id-prefix "$prefix" --rate "${2:-0}" \
        >"$SC/producer.out" 2>"$SC/producer.err" &
    PRODUCER=$!
}

# queue_backlog COUNT: COUNT jobs (ids NAME-1..NAME-COUNT) queued before
# any worker starts, so that the workers drain a backlog before and after
# the fault.  Sets the rate windows' bounds: from 5% of the backlog
# answered, to 5% (at least 2000) before its end.
queue_backlog() {
    seq -f "$SC_NAME-%.0f" 1 "$1" >>"$SC/sent"
    "$BIN/greet-producer" --count "$1" --users 12 --id-prefix "$SC_NAME" >/dev/null 2>"$SC/backlog.err"
    check_eq "$SC_NAME: a backlog of $1 jobs queued" "$?" 0
    rate_bounds "$1"
}

rate_bounds() { # rate_bounds BACKLOG
    local margin=$(($1 / 20))
    [ $margin -lt 2000 ] && margin=2000
    RATE_FROM=$(($1 / 20))
    RATE_TO=$(($1 - margin))
}

# wait_replies N SECONDS [STALL]: until the workers have published N
# replies and then none for a second (the last in-hand jobs done); gives
# up after SECONDS, or after STALL s (default 15) without a new reply.
wait_replies() {
    local want=$1 limit=$2 stall=${3:-15} start=$SECONDS last=-1 last_change=$SECONDS replies quiet_since
    while :; do
        replies=$(replies_now)
        if [ "$replies" != "$last" ]; then
            last=$replies
            last_change=$SECONDS
            quiet_since=$(now)
        elif [ "$replies" -ge "$want" ] &&
            awk -v since="$quiet_since" -v t="$(now)" 'BEGIN { exit !(t - since >= 1) }'; then
            return 0
        fi
        [ $((SECONDS - start)) -ge "$limit" ] && return 1
        [ $((SECONDS - last_change)) -ge "$stall" ] && return 1
        sleep 0.2
    done
}

# collect QUEUE FILE: every message of QUEUE, with its properties, into
# FILE (greet-replies --envelope).
collect() {
    local count
    count=$("$TOOLS/mqtool" depth "$1")
    : >"$2"
    [ "${count:-0}" -gt 0 ] || return 0
    "$BIN/greet-replies" --reply-queue "$1" --envelope --prefetch 1000 --count "$count" --timeout 120 \
        >"$2" 2>>"$SC/collect.err"
}

# fault_now: marks the moment of the fault (fault_begin); the scenario only
# counts if jobs were still unanswered then (a fault after the drain tests
# nothing).
fault_now() {
    local answered
    mark fault_begin
    answered=$(replies_now)
    echo "#   fault injected with $answered of $(wc -l <"$SC/sent") jobs answered"
    check "$SC_NAME: the fault came mid-stream" test "$answered" -lt "$(wc -l <"$SC/sent")"
}

# fault_over: marks the end of the fault (fault_end).
fault_over() {
    mark fault_end
}

# scenario_end MAX_DUPLICATES [SECONDS]: waits for the drain (at most
# SECONDS, default 120; 15 s without a new reply ends it too), reads the
# replies and the dead queue, then judges it all.
scenario_end() {
    local max_duplicates=$1 expected jobs_left verdict reconnects lost procs
    local extra=()
    # Every job gets a reply, but those that crash workers and those whose
    # reply queue refuses it.
    expected=$(($(wc -l <"$SC/sent") - $(wc -l <"$SC/crash")))
    [ -e "$SC/unrepliable" ] && expected=$((expected - $(wc -l <"$SC/unrepliable")))
    help_slow_drain "$expected"
    wait_replies "$expected" "${2:-120}"
    if [ -n "$PRODUCER" ]; then
        wait "$PRODUCER"
        check_eq "$SC_NAME: the producer got every job confirmed" "$?" 0
    fi
    stop_workers
    sampler_stop
    collect greet.replies "$SC/replies.jsonl"
    collect greet.dead "$SC/dead.jsonl"
    jobs_left=$("$TOOLS/mqtool" depth greet.jobs)
    [ -e "$SC/unrepliable" ] && extra=("$SC/unrepliable")
    verdict=$("$TOOLS/historycheck" "$SC_NAME" "$SC/sent" "$SC/poison" "$SC/crash" "$SC/replies.jsonl" \
        "$SC/dead.jsonl" "$jobs_left" "$max_duplicates" "${extra[@]}" 2>"$SC/check.err")
    local status=$?
    echo "$verdict"
    head -n 5 "$SC/check.err"
    read -r reconnects lost procs < <(reconnect_counts)
    echo "#   reconnects: $reconnects (broker.lost $lost) over $procs worker processes"
    check_eq "$SC_NAME: nothing lost, no innocent dead, duplicates only as redeliveries" "$status" 0
    check "$SC_NAME: no sanitizer report" no_sanitizer_report "$SC"/*.log "$SC"/*.err
}

# backlog_scenario NAME WORKERS [VAR=value...]: a scenario whose workers
# start on a backlog of BACKLOG jobs.
backlog_scenario() {
    local name=$1 workers=$2
    shift 2
    scenario_begin "$name"
    queue_backlog "$BACKLOG"
    start_workers "$workers" "$@"
}

