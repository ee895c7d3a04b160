#!/usr/bin/env bash
# Formatting and lints, as required before committing. Usage: bash ci/lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# One-shot builds: incremental state only fills the disk (it reached tens of GB here).
export CARGO_INCREMENTAL=0
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
