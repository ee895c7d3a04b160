#!/usr/bin/env bash
# Formatting and lints, as required before committing. Usage: bash ci/lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# One-shot builds: incremental state only fills the disk (it reached tens of GB here).
export CARGO_INCREMENTAL=0
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
cargo fmt --all -- --check
# Everything, with every feature the workspace uses.
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
# Each tool with exactly the proxy features it asks for, and the proxy library with no
# optional feature and with each one alone: a feature that only builds beside the others
# is found here, not by a user.
cargo clippy --locked -p loadtest -- -D warnings
cargo clippy --locked -p devstack -- -D warnings
for feature in "" redis postgres nats clickhouse oidc otlp; do
  echo "== prism-proxy --no-default-features ${feature:+--features $feature}"
  cargo clippy --locked -p prism-proxy --lib --no-default-features ${feature:+--features "$feature"} -- -D warnings
done
