#!/usr/bin/env bash
# What live OTLP metrics cost a run: the release loadtest against its embedded proxy
# (closed model, 64 clients, 9 s measured), with OTEL_EXPORTER_OTLP_ENDPOINT pointing at
# a real OTLP/HTTP receiver (PyPI oteltap), at a closed port, and unset, alternating. Prints one line per run:
# the rate, p99, and loadtest's own CPU per request (the receiver runs on the same cores,
# so the rate also pays for its work).
# Usage: bash ci/bench-live-metrics.sh [ROUNDS]   (OTELTAP_PYTHON: a Python with oteltap)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
ROUNDS="${1:-2}"
PYTHON="${OTELTAP_PYTHON:-python3}"
cargo build --release --locked -q -p loadtest --bin loadtest
WORK="$(mktemp -d)"
cat >"$WORK/ab.yaml" <<'YAML'
name: live-ab
load: { model: closed, warmup: 1s, stages: [{ duration: 9s, concurrency: 64 }] }
keyspaces: { k: { prefix: "k:", count: 1000 } }
operations: [{ op: keyvalue.get, weight: 9, keys: k }, { op: keyvalue.set, weight: 1, keys: k, value_size: 64 }]
YAML
"$PYTHON" -u -m oteltap --port 14319 >/dev/null 2>&1 & RECEIVER=$!
trap 'kill $RECEIVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
sleep 2
echo "# ci/bench-live-metrics.sh $(date -u +%FT%TZ) on $(nproc) cores"
for round in $(seq 1 "$ROUNDS"); do
  # unreachable: every sample still recorded and exported, the receiver's own work left out.
  for mode in off on unreachable; do
    case "$mode" in
      on) export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:14319 ;;
      unreachable) export OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:1 ;;
      *) unset OTEL_EXPORTER_OTLP_ENDPOINT ;;
    esac
    # loadtest's own CPU (the embedded proxy included), apart from the receiver's.
    cpu="$( { TIMEFORMAT='%U %S'; time "$CARGO_TARGET_DIR/release/loadtest" run "$WORK/ab.yaml" --out "$WORK/$mode" \
      --quiet >"$WORK/$mode.txt" 2>/dev/null; } 2>&1 )"
    awk -v r="$round" -v m="$mode" -v cpu="$cpu" '$1 == "all" {
      split(cpu, t, " "); printf "round=%s live=%s req_per_s=%s p99=%s cpu_us_per_req=%.2f\n", r, m, $3, $6, (t[1] + t[2]) * 1e6 / $2
    }' "$WORK/$mode.txt"
  done
done
