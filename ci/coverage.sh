#!/usr/bin/env bash
# Line coverage of the workspace by its whole test suite (cargo-llvm-cov, LLVM source
# coverage), per crate and per proxy module, into reports/coverage.md, against the targets
# the coverage RFC sets (85% for patterns, 90% for utilities). Not in CI: it builds every
# crate again instrumented (its own target folder) and runs every test, about 20 minutes
# on 2 cores. Usage: bash ci/coverage.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0
export CARGO_TERM_COLOR=never
command -v cargo-llvm-cov >/dev/null || cargo install --locked cargo-llvm-cov
rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools-preview

# The same servers and images as ci/test.sh.
eval "$(bash ci/install-servers.sh)"
eval "$(bash ci/build-standins.sh)"
eval "$(bash ci/build-dex.sh)"
eval "$(bash ci/install-oidc-provider.sh)"
export PRISM_ACCEPT_STRICT=1

export CARGO_TARGET_DIR="${COVERAGE_TARGET_DIR:-$HOME/.cache/prism-coverage-target}"
out="$CARGO_TARGET_DIR/coverage.json"
started=$(date +%s)
status=0
# Test code itself is not what is measured.
cargo llvm-cov --workspace --all-features --locked --no-fail-fast \
  --ignore-filename-regex '(/tests/|/benches/|/examples/|/\.cargo/|/rustc/)' \
  --json --summary-only --output-path "$out" || status=$?
took=$(( $(date +%s) - started ))
LLVM_COV_VERSION="$(cargo llvm-cov --version)" python3 ci/coverage_report.py "$out" "$took" "$status" "$(git rev-parse --short=12 HEAD)" > reports/coverage.md
echo "coverage: reports/coverage.md (tests exit $status, ${took}s)" >&2
exit "$status"
