#!/usr/bin/env bash
# Proxy overhead per backend and ClickHouse ingestion, one run (acceptance/examples/
# bench_backends.rs): direct client vs the same load through a prism-proxy process.
# Servers are started as processes (ci/install-servers.sh installs them).
# Writes reports/baseline/backends-latest.txt; reports/baseline/backends.md explains it.
# Usage: bash ci/bench-backends.sh [extra bench_backends flags, e.g. --duration 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
bash ci/install-servers.sh >/dev/null
cargo build --release --locked -p prism-proxy --bin prism-proxy
cargo build --release --locked -p acceptance --example bench_backends
OUT=reports/baseline/backends-latest.txt
{
  echo "# bench_backends $(date -u +%FT%TZ) on $(nproc) CPUs ($(uname -r)); flags: $*"
  "$CARGO_TARGET_DIR/release/examples/bench_backends" "$@"
} | tee "$OUT"
echo "wrote $OUT" >&2
