#!/bin/sh
# The test command: install what the tests need, build with AddressSanitizer
# and UndefinedBehaviorSanitizer, and run every test (unit and end-to-end).
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DKVMOCK_SANITIZE=ON -DKVMOCK_E2E=ON
cmake --build build-test -j"$(nproc)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir build-test --output-on-failure -j2
