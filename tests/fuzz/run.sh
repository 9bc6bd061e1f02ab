#!/bin/sh
# Build the libFuzzer targets with clang (a separate build folder) and run each
# for SECONDS (default 30) with leak detection; fail on any crash, leak,
# sanitizer report, invariant failure or timeout.
#
#   tests/fuzz/run.sh [SECONDS]
#
# Environment: KVMOCK_FUZZ_BUILD (build folder, default build-fuzz),
# KVMOCK_FUZZ_TARGETS (space-separated subset), KVMOCK_FUZZ_JOBS (build jobs).
# Each target starts from its seeds in tests/fuzz/corpus/<target>/ and the
# inputs of past findings in tests/fuzz/findings/<target>/ (so a fixed defect
# stays fixed), and grows a working corpus in BUILD/fuzz-corpus/<target>/ (kept
# between runs); a crashing input is written to BUILD/fuzz-artifacts/<target>/
# and named in the output.
set -eu

seconds=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${KVMOCK_FUZZ_BUILD:-$root/build-fuzz}
targets=${KVMOCK_FUZZ_TARGETS:-"fuzz_b64url fuzz_token fuzz_assertion fuzz_route fuzz_jwk fuzz_restore fuzz_http fuzz_release fuzz_byok"}
jobs=${KVMOCK_FUZZ_JOBS:-$(nproc)}

# the targets' temporary data folders: a crashing run cannot remove its own
mkdir -p "$build/fuzz-tmp"
export TMPDIR="$build/fuzz-tmp"

command -v clang >/dev/null || { echo "run.sh: clang is not installed" >&2; exit 2; }
CC=clang cmake -S "$root" -B "$build" -DKVMOCK_FUZZ=ON -DKVMOCK_SANITIZE=ON -DKVMOCK_E2E=OFF \
    -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link >/dev/null
cmake --build "$build" -j "$jobs" --target fuzzers >/dev/null

failed=""
summary=""
for t in $targets; do
    bin="$build/tests/fuzz/$t"
    work="$build/fuzz-corpus/$t"
    art="$build/fuzz-artifacts/$t"
    log="$build/fuzz-logs/$t.log"
    mkdir -p "$work" "$art" "$(dirname "$log")"
    findings=""
    [ -d "$root/tests/fuzz/findings/$t" ] && findings="$root/tests/fuzz/findings/$t"
    echo "== $t: ${seconds} s"
    rc=0
    "$bin" -max_total_time="$seconds" -detect_leaks=1 -timeout=60 -rss_limit_mb=4096 \
        -print_final_stats=1 -artifact_prefix="$art/" "$work" "$root/tests/fuzz/corpus/$t" $findings \
        >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\).*/cov \1, ft \2/p')
    line="$t: exit $rc, ${execs:-?} executions, ${cov:-no coverage line}, corpus $(ls "$work" | wc -l) files"
    echo "$line"
    summary="$summary$line
"
    if [ "$rc" -ne 0 ]; then
        failed="$failed $t"
        grep -E 'ERROR|SUMMARY|invariant|answer|Test unit written|==[0-9]+==' "$log" | head -n 20 || true
        echo "   full log: $log"
    fi
done
echo
printf '%s' "$summary"
if [ -n "$failed" ]; then
    echo "FAILED:$failed"
    exit 1
fi
echo "all fuzz targets ran ${seconds} s without a finding"
