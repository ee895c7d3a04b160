#!/usr/bin/env bash
# Runs every test with the set-up it needs. Usage: bash ci/test.sh [extra cargo test args]
# Works on a fresh Debian/Ubuntu machine with Rust; CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are cached outside the clone so repeated runs (and CI on the same machine)
# reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# In CI a backend the acceptance harness cannot provision is a failure, not a skip.
if [ "${CI:-}" = "true" ]; then export PRISM_ACCEPT_STRICT=1; fi

echo "== cargo test (workspace), target dir $CARGO_TARGET_DIR, strict=${PRISM_ACCEPT_STRICT:-0}"
cargo test --workspace --locked "$@"
