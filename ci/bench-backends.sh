#!/usr/bin/env bash
# Proxy overhead per backend and ClickHouse ingestion, one run (acceptance/examples/
# bench_backends.rs and bench_ingest.rs): direct clients vs the same load through a
# prism-proxy process. Servers are started as processes (ci/install-servers.sh installs
# them). Everything is built with the `fast` profile (fat LTO), as the proxy is deployed.
# Writes reports/baseline/backends-latest.txt; reports/baseline/backends.md explains it.
# Usage: bash ci/bench-backends.sh [bench_backends flags, e.g. --duration 10s]
#        BENCH_INGEST_FLAGS="--rounds 5" bash ci/bench-backends.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
bash ci/install-servers.sh >/dev/null
cargo build --profile fast --locked -p prism-proxy --bin prism-proxy
cargo build --profile fast --locked -p acceptance --example bench_backends --example bench_ingest
BIN="$CARGO_TARGET_DIR/fast/examples"
OUT=reports/baseline/backends-latest.txt
# Ingestion at ClickHouse's own recommended INSERT size (100k rows, direct and in the
# driver), appends of 10k events (the namespace's max_batch_entries raised to match)
# from enough callers to fill the driver's batches.
INGEST="${BENCH_INGEST_FLAGS:---rounds 3 --events 4000000 --append-batch 10000 --insert-rows 100000 --callers 48}"
{
  echo "# bench_backends $(date -u +%FT%TZ) on $(nproc) CPUs ($(uname -r)); flags: $*"
  "$BIN/bench_backends" "$@"
  echo
  echo "# bench_ingest; flags: $INGEST"
  # shellcheck disable=SC2086
  "$BIN/bench_ingest" $INGEST
} | tee "$OUT"
echo "wrote $OUT" >&2
