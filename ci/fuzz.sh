#!/usr/bin/env bash
# The long fuzz run: every proptest fuzz harness (proxy/tests/fuzz.rs,
# loadtest/tests/fuzz.rs) with many more cases than CI's short run, in release mode.
# Usage: bash ci/fuzz.sh [cases per harness, default 200000]
# Prints the time spent; a failure prints proptest's minimal failing input (turn it
# into a regression test) and exits non-zero. Record the run in reports/baseline/fuzz.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0
cases="${1:-200000}"
start=$(date +%s)
PROPTEST_CASES="$cases" cargo test --release --locked -p prism-proxy --all-features --test fuzz
PROPTEST_CASES="$cases" cargo test --release --locked -p loadtest --test fuzz
echo "== fuzz: $cases cases per harness in $(( $(date +%s) - start )) s"
