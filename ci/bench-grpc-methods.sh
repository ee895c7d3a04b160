#!/usr/bin/env bash
# `grpc.unary` against ghz, the field's tool for any-method gRPC load, side by side in one
# run: the same bare tonic server (cpu0), the same method (KeyValueBasic/Get, descriptors
# from the .proto file), 256 concurrent callers over 4 connections, one tool at a time on
# cpu1. Also loadtest's typed keyvalue.get and a grpc.unary whose template has a
# placeholder (rendered per request), so the cost of each path shows. Prints rates, p50/p99
# and CPU per request; writes reports/baseline/grpc-methods-latest.txt.
# Usage: bash ci/bench-grpc-methods.sh [ROUNDS]     (ghz: go install github.com/bojand/ghz/cmd/ghz@v0.121.0)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
ROUNDS="${1:-2}"
GHZ="${GHZ:-$(go env GOPATH)/bin/ghz}"
[ -x "$GHZ" ] || GOBIN="$(dirname "$GHZ")" go install github.com/bojand/ghz/cmd/ghz@v0.121.0
cargo build --release --locked -p loadtest --bin loadtest
cargo build --release --locked -p prism-proxy --example bench_get --example bare_server
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d)"; trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
taskset -c 0 "$BIN/examples/bare_server" 127.0.0.1:55812 >/dev/null 2>&1 & SERVER=$!
sleep 0.5; "$BIN/examples/bench_get" check http://127.0.0.1:55812
PROTO="$PWD/proto"
scenario() { # name, operation
  cat >"$WORK/$1.yaml" <<YAML
name: $1
target: { endpoint: "http://127.0.0.1:55812", channels: 4 }
grpc: { protos: ["$PROTO/prism/keyvalue/v1/keyvalue.proto"], import_paths: ["$PROTO"] }
load: { model: closed, warmup: 2s, stages: [{ duration: 12s, concurrency: 256 }] }
keyspaces: { k: { prefix: "bench:key", count: 1 } }
operations: [$2]
YAML
}
scenario typed '{ op: keyvalue.get, keys: k }'
scenario unary '{ op: grpc.unary, method: prism.keyvalue.v1.KeyValueBasic/Get, request: { key: "YmVuY2g6a2V5" } }'
scenario rendered '{ op: grpc.unary, method: prism.keyvalue.v1.KeyValueBasic/Get, keys: k, request: { key: "{key}" } }'
. ci/bench-measure.sh
OUT="reports/baseline/grpc-methods-latest.txt"
exec > >(tee "$OUT")
echo "# ci/bench-grpc-methods.sh $(date -u +%FT%TZ) on $(nproc) cores; $("$GHZ" --version 2>&1 | head -1); server taskset -c 0, load taskset -c 1"
for round in $(seq "$ROUNDS"); do
  line="round=$round"
  for s in typed unary rendered; do
    measured "$BIN/loadtest" run "$WORK/$s.yaml" --out "$WORK/$s$round" --quiet >/dev/null
    read -r rate errors p50 p99 < <(python3 -c "import json; t=json.load(open('$WORK/$s$round/run.json'))['total']; print(round(t['rate_per_s'],1), t['errors'], t['service_time']['p50_us'], t['service_time']['p99_us'])")
    # The CPU covers the 2 s warm-up too: count its requests at the measured rate.
    cpu_us="$(python3 -c "print(round($(cat "$WORK/cpu")*1e6/max($rate*14,1),2))")"
    line="$line loadtest_$s=$rate(errors=$errors,p50=${p50}us,p99=${p99}us,cpu=${cpu_us}us/req)"
  done
  measured "$GHZ" --insecure --proto "$PROTO/prism/keyvalue/v1/keyvalue.proto" --import-paths "$PROTO" \
    --call prism.keyvalue.v1.KeyValueBasic/Get -d '{"key":"YmVuY2g6a2V5"}' -m '{"x-prism-namespace":"default"}' \
    -c 256 --connections 4 -z 12s --format json -o "$WORK/ghz$round.json" 127.0.0.1:55812
  read -r rate count p50 p99 errors < <(python3 -c "
import json; r=json.load(open('$WORK/ghz$round.json'))
d={x['percentage']:x['latency'] for x in r['latencyDistribution']}
print(round(r['rps'],1), r['count'], d[50]//1000, d[99]//1000, sum(v for k,v in r['statusCodeDistribution'].items() if k!='OK'))")
  cpu_us="$(python3 -c "print(round($(cat "$WORK/cpu")*1e6/max($count,1),2))")"
  unary="$(python3 -c "import json; print(round(json.load(open('$WORK/unary$round/run.json'))['total']['rate_per_s'],1))")"
  echo "$line ghz=$rate(errors=$errors,p50=${p50}us,p99=${p99}us,cpu=${cpu_us}us/req) ratio_grpc_unary_ghz=$(python3 -c "print(round($unary/$rate,2))")"
done
