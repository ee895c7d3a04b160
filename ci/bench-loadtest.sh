#!/usr/bin/env bash
# Is loadtest ever the hidden bottleneck? Same run, same bare tonic server pinned to cpu0,
# load pinned to cpu1: the closed-model unary-Get rate loadtest sustains vs h2load's.
# Writes reports/baseline/loadtest-latest.txt. Usage: bash ci/bench-loadtest.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
ROUNDS="${1:-2}"
command -v h2load >/dev/null || { apt-get install -y nghttp2-client >/dev/null || { apt-get update >/dev/null && apt-get install -y nghttp2-client >/dev/null; }; }
cargo build --release --locked -p loadtest -p prism-proxy --example bench_get
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d)"; trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN/examples/bench_get" request-body "$WORK/get.bin"
taskset -c 0 "$BIN/examples/bench_get" bare-server 127.0.0.1:55811 >/dev/null 2>&1 & SERVER=$!
sleep 0.5; "$BIN/examples/bench_get" check http://127.0.0.1:55811
cat >"$WORK/closed.yaml" <<YAML
name: generator-ceiling
target: { endpoint: "http://127.0.0.1:55811", channels: 4 }
load: { model: closed, warmup: 2s, stages: [{ duration: 12s, concurrency: 256 }] }
keyspaces: { k: { prefix: "bench:key", count: 1 } }
operations: [{ op: keyvalue.get, keys: k }]
YAML
OUT="reports/baseline/loadtest-latest.txt"
exec > >(tee "$OUT")
echo "# ci/bench-loadtest.sh $(date -u +%FT%TZ) on $(nproc) cores; server taskset -c 0, load taskset -c 1"
for round in $(seq "$ROUNDS"); do
  H="$(taskset -c 1 h2load -t 1 -c 4 -m 64 -n 600000 -d "$WORK/get.bin" -H 'content-type: application/grpc' \
        -H 'te: trailers' http://127.0.0.1:55811/prism.keyvalue.v1.KeyValueBasic/Get \
        | sed -nE 's/.*finished in [^,]+, ([0-9.]+) req\/s.*/\1/p')"
  taskset -c 1 "$BIN/loadtest" run "$WORK/closed.yaml" --out "$WORK/run$round" --quiet >/dev/null
  L="$(python3 -c "import json,sys; r=json.load(open('$WORK/run$round/run.json')); print(round(r['total']['rate_per_s'],1))")"
  P="$(python3 -c "import json; r=json.load(open('$WORK/run$round/run.json')); t=r['total']; print(t['errors'], t['service_time']['p50_us'], t['service_time']['p99_us'])")"
  echo "round=$round h2load_c4_m64=$H loadtest_closed_256=$L ratio=$(python3 -c "print(round($L/$H,3))") loadtest_errors_p50us_p99us=$P"
done
