#!/usr/bin/env bash
# End-to-end unary Get benchmark: the proxy (memstore) next to a bare tonic server answering
# the same Get from a map, same run, same load tool (h2load: real gRPC frames), server pinned
# to cpu0 and h2load to cpu1. Writes the numbers to reports/baseline/proxy-latest.txt.
# Usage: bash ci/bench-proxy.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
ROUNDS="${1:-2}"
N=300000
command -v h2load >/dev/null || { apt-get install -y nghttp2-client >/dev/null || { apt-get update >/dev/null && apt-get install -y nghttp2-client >/dev/null; }; }

cargo build --release --locked -p prism-proxy --bin prism-proxy --example bench_get
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d)"
OUT="reports/baseline/proxy-latest.txt"
"$BIN/examples/bench_get" request-body "$WORK/get.bin"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

PATH_GET=/prism.keyvalue.v1.KeyValueBasic/Get
h2() { # h2() URL EXTRA... -> prints h2load output
  taskset -c 1 h2load -t 1 -d "$WORK/get.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
    -H 'x-prism-namespace: default' "$@"
}
rate_of() { sed -nE 's/.*finished in [^,]+, ([0-9.]+) req\/s.*/\1/p'; }

# start_bare / start_proxy set URL; servers' output goes to files so no pipe stays open.
start_bare() {
  taskset -c 0 "$BIN/examples/bench_get" bare-server 127.0.0.1:55801 >"$WORK/bare.log" 2>&1 & PIDS+=($!)
  sleep 0.5; "$BIN/examples/bench_get" check http://127.0.0.1:55801
  URL=http://127.0.0.1:55801
}
start_proxy() {
  RUST_LOG=warn taskset -c 0 "$BIN/prism-proxy" --listen 127.0.0.1:55802 --admin-listen 127.0.0.1:0 \
    >"$WORK/proxy.log" 2>&1 & PIDS+=($!)
  sleep 0.5; "$BIN/examples/bench_get" preload http://127.0.0.1:55802 default
  "$BIN/examples/bench_get" check http://127.0.0.1:55802
  URL=http://127.0.0.1:55802
}
stop_last() { kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true; }

exec > >(tee "$OUT")
echo "# ci/bench-proxy.sh $(date -u +%FT%TZ) on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# h2load -t 1 -c C -m M -n $N, server taskset -c 0, h2load taskset -c 1, 128-byte value"
for round in $(seq "$ROUNDS"); do
  for target in bare proxy; do
    "start_$target"
    h2 -n 20000 -c 4 -m 64 "$URL$PATH_GET" >/dev/null # warm-up
    for cm in "4 64" "1 16"; do
      set -- $cm
      R="$(h2 -n $N -c "$1" -m "$2" "$URL$PATH_GET" | tee "$WORK/h2.txt" | rate_of)"
      FAILED="$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' "$WORK/h2.txt" | head -1)"
      echo "round=$round target=$target c=$1 m=$2 rate=$R failed=$FAILED"
    done
    stop_last
  done
done

# Latency at half of the proxy's best -c4 -m64 rate, open model (bench_get open-loop: paced
# arrivals, latency from intended send time), against both targets in turn.
BEST="$(awk '/target=proxy c=4/ {split($5,a,"="); if (a[2]>m) m=a[2]} END {print int(m)}' "$OUT")"
HALF=$((BEST / 2))
for target in bare proxy; do
  "start_$target"
  echo "half-rate target=$target rate=$HALF/s"
  taskset -c 1 "$BIN/examples/bench_get" open-loop "$URL" "$HALF" 10
  stop_last
done
