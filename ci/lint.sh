#!/usr/bin/env bash
# Formatting and lints, as required before committing. Usage: bash ci/lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
