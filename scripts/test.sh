#!/usr/bin/env bash
# The whole test suite: unit tests (Check), a smoke run of the fuzz
# targets, the integration suite and the fault suite against real RabbitMQ
# and PostgreSQL servers, all on sanitizer builds (ASan + UBSan).  Installs
# missing Debian packages when run as root.  SKIP_FAULTS=1 leaves out the
# fault suite (3 minutes).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
. scripts/lib/deps.sh
deps_ensure $GREET_BUILD_PACKAGES $GREET_SERVER_PACKAGES $GREET_TEST_PACKAGES || exit 1

echo "== build (sanitizers: make sanitize, as a user would run it)"
make -s sanitize || exit 1
echo "== build (release, warnings as errors in CI)"
make -s all tools || exit 1
if [ -z "${SKIP_FAULTS:-}" ]; then
    echo "== build (sanitizers + fault injection, for the fault suite)"
    make -s FAULT_INJECTION=1 all tools || exit 1
fi

passed=0
failed=0
count() { # count PASSED FAILED
    passed=$((passed + $1))
    failed=$((failed + $2))
}

echo "== unit tests"
unit_out=$(build/asan/tests/unit-tests 2>&1)
unit_status=$?
echo "$unit_out"
if [[ "$unit_out" =~ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
    count $((BASH_REMATCH[1] - BASH_REMATCH[2] - BASH_REMATCH[3])) $((BASH_REMATCH[2] + BASH_REMATCH[3]))
else
    count 0 1
fi
[ $unit_status = 0 ] || [ $failed -gt 0 ] || count 0 1

run_suite() { # run_suite NAME BUILD-DIR COMMAND [ARG...]
    local out status started=$SECONDS
    echo "== $1"
    out=$(mktemp)
    GREET_BIN=$2/bin GREET_TOOLS=$2/tests "${@:3}" 2>&1 | tee "$out"
    status=${PIPESTATUS[0]}
    if [[ "$(tail -n 1 "$out")" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed ]]; then
        count "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}"
        [ "$status" = 0 ] || [ "${BASH_REMATCH[2]}" -gt 0 ] || count 0 1
    else
        count 0 1
    fi
    rm -f "$out"
    echo "# $1: $((SECONDS - started)) s"
}

# Every libFuzzer target for a few seconds from its checked-in seeds, so
# that none rots; no server needed.  make fuzz runs them for longer.
run_suite "fuzz smoke run (libFuzzer targets, ASan + UBSan, a few seconds each)" build/fuzz \
    make -s fuzz-smoke
run_suite "integration tests (real RabbitMQ and PostgreSQL)" build/asan tests/integration/run.sh
run_suite "greet-admin against real servers" build/asan tests/admin/run.sh
run_suite "least privilege (broker users, database roles)" build/asan tests/security/run.sh
run_suite "TLS on both servers (amqps://, verify-full, certificate logins)" build/asan tests/tls/run.sh
run_suite "authenticated jobs (GREET_AUTH=jwt: good and bad tokens, expiry and redelivery)" build/asan \
    tests/auth/run.sh
run_suite "deployment files (systemd, Kubernetes, compose, Dockerfile; offline)" . tests/deploy/run.sh
if [ -z "${SKIP_FAULTS:-}" ]; then
    run_suite "fault suite (kills, restarts, freezes)" build/faults tests/faults/run.sh
fi
# The metrics port: the fault build when there is one (its stalled-loop
# hook is what fails /healthz), else the sanitizer build.
if [ -z "${SKIP_FAULTS:-}" ]; then
    run_suite "observability suite (a real Prometheus, outages, bad HTTP clients)" build/faults tests/observe/run.sh
else
    run_suite "observability suite (a real Prometheus, outages, bad HTTP clients)" build/asan tests/observe/run.sh
fi
if [ -z "${SKIP_CLUSTER:-}" ]; then
    run_suite "cluster fault suite (3 RabbitMQ nodes, a PostgreSQL standby)" build/faults tests/cluster/run.sh
fi

# The benchmark in miniature, so that it cannot rot: its figures are
# printed, never judged (shared machines are noisy); it passes when it
# measured something.
echo "== benchmark smoke run"
if BENCH_SMOKE=1 bench/run.sh 2>&1 | tail -n 8 && json=$(ls -t bench/results/bench-*.json | head -n 1) &&
    jq -e '.rows[0] | .baseline_jobs_per_s > 0 and .worker1_jobs_per_s > 0 and .worker2_jobs_per_s > 0
           and .worker1_peak_rss_kib > 0 and .latency_ms_at_1000.p99 > 0' "$json" >/dev/null; then
    echo "ok - benchmark smoke run measured throughput, memory and latency"
    count 1 0
else
    echo "not ok - benchmark smoke run"
    count 0 1
fi

echo "== format check"
if command -v clang-format >/dev/null 2>&1; then
    if make -s format-check >/dev/null 2>&1; then
        echo "ok - every C file is clang-formatted"
        count 1 0
    else
        echo "not ok - sources are not clang-formatted (make format)"
        count 0 1
    fi
else
    # Not part of a fresh install, and not worth an LLVM download here.
    echo "ok - format check # SKIP clang-format is not installed (apt-get install clang-format)"
fi

echo
echo "total: $passed passed, $failed failed"
[ "$failed" = 0 ]
