#!/usr/bin/env bash
# The libFuzzer targets (tests/fuzz/fuzz_<target>.c, built by make
# fuzz-build into build/fuzz/), each for FUZZ_SECONDS from its seeds in
# tests/fuzz/corpus/<target>/: one "ok - fuzz TARGET: N runs, no crash"
# line and a "# TARGET: R runs/s" line each, then "N passed, M failed".
#
#     make fuzz                    60 s a target (FUZZ_SECONDS=600 make fuzz)
#     make fuzz-smoke              3 s a target: what scripts/test.sh runs
#     tests/fuzz/run.sh TARGET...  after make fuzz-build
#
# What the fuzzer finds goes to a working corpus, never among the seeds:
# build/fuzz/corpus/<target>/, kept from one make fuzz to the next, or a
# scratch directory for the smoke run (FUZZ_SMOKE=1), which starts from
# the seeds alone.  A crash, a leak, a sanitizer report or a broken
# property fails the target and leaves the input that did it in
# build/fuzz/crashes/; build/fuzz/fuzz-<target> FILE replays it.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
. tests/lib/testlib.sh

SECONDS_EACH=${FUZZ_SECONDS:-60}
mkdir -p build/fuzz/crashes build/fuzz/logs
scratch=() # the smoke run's working corpus and log, removed however the run ends
trap 'rm -rf "${scratch[@]}"' EXIT
trap 'exit 130' INT TERM

for target in "$@"; do
    if [ -n "${FUZZ_SMOKE:-}" ]; then
        # Its own log too: smoke runs of two checkouts' suites may overlap.
        work=$(mktemp -d "${TMPDIR:-/tmp}/greet-fuzz-$target.XXXXXX") || exit 1
        log=$(mktemp "${TMPDIR:-/tmp}/greet-fuzz-$target.XXXXXX.log") || exit 1
        scratch=("$work" "$log")
    else
        work=build/fuzz/corpus/$target
        log=build/fuzz/logs/$target.log
        mkdir -p "$work"
    fi
    # -timeout: an input that takes seconds is a hang, and a failure.
    "build/fuzz/fuzz-$target" -max_total_time="$SECONDS_EACH" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="build/fuzz/crashes/$target-" "$work" "tests/fuzz/corpus/$target" \
        >"$log" 2>&1
    status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    if [ "$status" = 0 ] && [ -n "$runs" ]; then
        _record 0 "fuzz $target: $runs runs, no crash"
        found=$(find "$work" -type f | wc -l)
        if [ -n "${FUZZ_SMOKE:-}" ]; then
            echo "# $target: ${rate:-?} runs/s, $found new inputs"
        else
            echo "# $target: ${rate:-?} runs/s, $found inputs in $work"
        fi
    else
        _record 1 "fuzz $target: exit status $status after ${runs:-?} runs (log: $log)"
        [ -n "${FUZZ_SMOKE:-}" ] && scratch=("$work") # the log stays
        grep -E -A 8 'property violated|ERROR: |runtime error:' "$log" | head -n 20 |
            sed 's/^/    | /'
        [ -x "build/fuzz/fuzz-$target" ] || echo "    no build/fuzz/fuzz-$target (make fuzz-build)"
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        [ -n "$artifact" ] && echo "    replay: build/fuzz/fuzz-$target $artifact"
    fi
    rm -rf "${scratch[@]}"
    scratch=()
done
tests_summary
