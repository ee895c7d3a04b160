#!/usr/bin/env bash
# The proxy against the fastest bare gRPC server this project can write, same run, same
# load: unary Get of a 128-byte value, server pinned to cpu0, load pinned to cpu1, both
# built with the `fast` profile (fat LTO) and mimalloc.
#   1. throughput: h2load -t 1 -c 4 -m 64, ROUNDS alternating rounds (bare, proxy), the
#      server's CPU per request from /proc; median ratio proxy / bare;
#   2. tails: `loadtest run` in the open model at half the proxy's best rate (and at a
#      quarter and an eighth), against the proxy and the bare server in turn, with the
#      generator's own send lag beside the latency, and how busy the server and the
#      generator were (CPU seconds over the run's 12 s).
# Writes reports/baseline/proxy-latest.txt; reports/baseline/proxy.md explains it.
# Instruction counts per request: ci/bench-instructions.sh.
# Usage: bash ci/bench-proxy.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
ROUNDS="${1:-5}"
N=600000
. ci/bench-measure.sh
need_h2load

cargo build --profile fast --locked -p prism-proxy --bin prism-proxy --example bare_server --example bench_get
cargo build --profile fast --locked -p loadtest --bin loadtest
BIN="$CARGO_TARGET_DIR/fast"
OUT="reports/baseline/proxy-latest.txt"
h2_work

PORT=55801
# start_bare / start_proxy start the target pinned to cpu0 and set URL and SERVER.
start_bare() {
  taskset -c 0 "$BIN/examples/bare_server" "127.0.0.1:$PORT" >"$WORK/bare.log" 2>&1 & SERVER=$!; PIDS+=("$SERVER")
  sleep 0.5; URL="http://127.0.0.1:$PORT"; "$BIN/examples/bench_get" check "$URL"
}
start_proxy() {
  RUST_LOG=warn taskset -c 0 "$BIN/prism-proxy" --runtime current-thread --listen "127.0.0.1:$PORT" \
    --admin-listen 127.0.0.1:0 >"$WORK/proxy.log" 2>&1 & SERVER=$!; PIDS+=("$SERVER")
  sleep 0.5; URL="http://127.0.0.1:$PORT"
  "$BIN/examples/bench_get" preload "$URL" default; "$BIN/examples/bench_get" check "$URL"
}
stop_server() { kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; }
h2() {
  taskset -c 1 h2load -t 1 -d "$WORK/get.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
    -H 'x-prism-namespace: default' "$@" "$URL/prism.keyvalue.v1.KeyValueBasic/Get"
}

exec > >(tee "$OUT")
echo "# ci/bench-proxy.sh $(date -u +%FT%TZ) on $(nproc) cores:$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
echo "# git $(git rev-parse --short HEAD); profile fast; server taskset -c 0, load taskset -c 1"
echo "## throughput: h2load -t 1 -c 4 -m 64 -n $N after a 20k warm-up"
for round in $(seq "$ROUNDS"); do
  for target in bare proxy; do
    "start_$target"
    h2 -n 20000 -c 4 -m 64 >/dev/null
    before="$(cpu_s "$SERVER")"
    h2 -n "$N" -c 4 -m 64 >"$WORK/h2.txt"
    after="$(cpu_s "$SERVER")"
    rate="$(sed -nE 's/.*finished in [^,]+, ([0-9.]+) req\/s.*/\1/p' "$WORK/h2.txt")"
    failed="$(sed -nE 's/.* ([0-9]+) failed.*/\1/p' "$WORK/h2.txt" | head -1)"
    us="$(python3 -c "print(round(($after - $before) * 1e6 / $N, 2))")"
    echo "round=$round target=$target rate=$rate failed=$failed server_cpu_us_per_request=$us"
    stop_server
  done
done
python3 - "$OUT" <<'PY'
import re, statistics, sys
rows = [dict(kv.split('=') for kv in l.split()) for l in open(sys.argv[1]) if l.startswith('round=')]
rate = lambda r: float(r['rate'])
by_round = {}
for r in rows:
    by_round.setdefault(r['round'], {})[r['target']] = rate(r)
ratios = [v['proxy'] / v['bare'] for v in by_round.values() if 'proxy' in v and 'bare' in v]
print("ratios proxy/bare per round: " + " ".join(f"{x:.3f}" for x in ratios))
print(f"median ratio proxy/bare: {statistics.median(ratios):.3f}")
for t in ('bare', 'proxy'):
    print(f"median {t}: {statistics.median(rate(r) for r in rows if r['target'] == t):.0f} req/s")
PY

# Tails: the open model, latency from each request's intended send time.
BEST="$(awk '/target=proxy/ {split($3,a,"="); if (a[2]>m) m=a[2]} END {print int(m)}' "$OUT")"
echo "## tails: loadtest open model, 2 s warm-up + 10 s, 4 HTTP/2 connections; proxy's best rate $BEST/s"
for div in 2 4 8; do
  RATE=$((BEST / div))
  for target in proxy bare; do
    "start_$target"
    cat >"$WORK/tail.yaml" <<YAML
name: tail-at-1-over-$div
target: { endpoint: "$URL", channels: 4 }
load: { model: open, warmup: 2s, max_in_flight: 20000, stages: [{ duration: 12s, rate: $RATE }] }
keyspaces: { k: { prefix: "bench:key", count: 1 } }
operations: [{ op: keyvalue.get, keys: k }]
YAML
    # How busy each side was over the 12 s: a server near 1.0 was at its limit at this
    # rate; the generator's fraction counts its pacing spin too.
    before="$(cpu_s "$SERVER")"
    measured "$BIN/loadtest" run "$WORK/tail.yaml" --out "$WORK/tail" --quiet >/dev/null 2>&1
    after="$(cpu_s "$SERVER")"
    python3 - "$WORK/tail/run.json" "$target" "$RATE" "$div" "$before" "$after" "$(cat "$WORK/cpu")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); t = r['total']; lat, svc, lag = t['latency'], t['service_time'], r['send_lag']
server_cpu, generator_cpu = float(sys.argv[6]) - float(sys.argv[5]), float(sys.argv[7])
served = t['rate_per_s'] * 12
print(f"rate=1/{sys.argv[4]} target={sys.argv[2]} scheduled={sys.argv[3]}/s achieved={t['rate_per_s']:.0f}/s errors={t['errors']} dropped={r['dropped']} "
      f"p50={lat['p50_us']}us p90={lat['p90_us']}us p99={lat['p99_us']}us p99.9={lat['p99_9_us']}us max={lat['max_us']}us "
      f"service_p99={svc['p99_us']}us send_lag_p50={lag['p50_us']}us send_lag_p99={lag['p99_us']}us "
      f"server_busy={server_cpu / 12:.2f} server_cpu_us_per_request={server_cpu * 1e6 / max(served, 1):.1f} generator_busy={generator_cpu / 12:.2f}")
PY
    stop_server
  done
done
