# testlib.sh - a small test vocabulary for the shell-driven suites.
# Sourced.  Each check prints "ok - NAME" or "not ok - NAME" with what was
# expected; tests_summary prints the counted line "N passed, M failed".

TESTS_PASSED=0
TESTS_FAILED=0
TESTS_SKIPPED=0
TESTS_FAILED_NAMES=()

_record() {
    local status=$1 name=$2
    if [ "$status" = 0 ]; then
        TESTS_PASSED=$((TESTS_PASSED + 1))
        echo "ok - $name"
    else
        TESTS_FAILED=$((TESTS_FAILED + 1))
        TESTS_FAILED_NAMES+=("$name")
        echo "not ok - $name"
    fi
}

# check NAME COMMAND...: passes when the command succeeds.  What the
# command prints is shown only when it fails (indented under the "not
# ok" line): a passing suite prints its checks and nothing else.  The
# command runs in this shell, so a function's exports and background
# processes stay.  Returns the command's status.
check() {
    local name=$1 out status
    shift
    out=$(mktemp "${TMPDIR:-/tmp}/greet-check.XXXXXX")
    "$@" >"$out" 2>&1
    status=$?
    _record "$status" "$name"
    [ "$status" = 0 ] || sed -n '1,30s/^/    | /p' "$out"
    rm -f "$out"
    return "$status"
}

# skip NAME REASON: a check not made, and why (TAP's "ok - NAME # SKIP
# REASON"); counted apart, never as passed.
skip() {
    TESTS_SKIPPED=$((TESTS_SKIPPED + 1))
    echo "ok - $1 # SKIP $2"
}

# check_eq NAME ACTUAL EXPECTED
check_eq() {
    if [ "$2" == "$3" ]; then
        _record 0 "$1"
    else
        _record 1 "$1"
        printf '    expected: %s\n    actual:   %s\n' "$3" "$2"
    fi
}

# check_match NAME ACTUAL EXTENDED-REGEX
check_match() {
    if [[ "$2" =~ $3 ]]; then
        _record 0 "$1"
    else
        _record 1 "$1"
        printf '    expected to match: %s\n    actual: %s\n' "$3" "$2"
    fi
}

# wait_for SECONDS COMMAND...: polls until the command succeeds.
wait_for() {
    local limit=$1 waited=0
    shift
    until "$@"; do
        sleep 0.1
        waited=$((waited + 1))
        [ $waited -ge $((limit * 10)) ] && return 1
    done
    return 0
}

tests_summary() {
    local name
    if [ "$TESTS_FAILED" -gt 0 ]; then
        echo "failed:"
        for name in "${TESTS_FAILED_NAMES[@]}"; do
            echo "  - $name"
        done
    fi
    if [ "$TESTS_SKIPPED" -gt 0 ]; then
        echo "$TESTS_PASSED passed, $TESTS_FAILED failed, $TESTS_SKIPPED skipped"
    else
        echo "$TESTS_PASSED passed, $TESTS_FAILED failed"
    fi
    [ "$TESTS_FAILED" = 0 ]
}

# stop_pids PID...: SIGTERM each, then wait for each (our own children).
stop_pids() {
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "$@"; do wait "$pid" 2>/dev/null; done
}

# finish_workdir DIR: removed after a clean run, kept (and named) when a
# test failed or KEEP_WORK is set.
finish_workdir() {
    if [ "$TESTS_FAILED" = 0 ] && [ -z "${KEEP_WORK:-}" ]; then
        rm -rf "$1"
    else
        echo "logs kept in $1"
    fi
}

# no_sanitizer_report FILE...: true when no ASan/LSan/UBSan report is in them.
no_sanitizer_report() {
    ! grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$@" 2>/dev/null
}

# start_worker NAME [VAR=value...]: a worker in the background, its log in
# $WORK/NAME.log, once it consumes; sets LAST_PID and adds it to
# WORKER_PIDS (the caller's clean-up stops them).
start_worker() {
    local name=$1
    shift
    env "$@" "$BIN/greet-worker" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    WORKER_PIDS+=("$LAST_PID")
    wait_for 10 grep -q 'event=consumer.started' "$WORK/$name.log"
}

# start_stall_server PORT: a server on 127.0.0.1:PORT that takes every
# connection and never says a word (a host frozen after accept, a
# half-open link); sets STALL_PID, for the caller to stop.
start_stall_server() {
    /usr/bin/python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(64)
held = []
while True:
    held.append(s.accept()[0])' "$1" &
    STALL_PID=$!
    wait_for 10 bash -c "(exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null"
}
