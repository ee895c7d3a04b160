#!/usr/bin/env bash
# Alternating A/B of two loadtest commands against the same bare tonic server (server
# pinned to cpu0, loadtest to cpu1), closed model, 256 clients, 10 s after 2 s warm-up.
# Each command is a loadtest binary, optionally behind `env VAR=...`, e.g.
#   bash ci/bench-loadtest-ab.sh "env LOADTEST_MULTI_THREAD=1 target/release/loadtest" target/release/loadtest
#   bash ci/bench-loadtest-ab.sh /tmp/loadtest-before target/release/loadtest 4
# (build a "before" binary from an older commit in a git worktree). Prints req/s per round.
set -euo pipefail
cd "$(dirname "$0")/.."
A="$1"; B="$2"; ROUNDS="${3:-4}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
cargo build --release --locked -p prism-proxy --example bench_get --example bare_server
BIN="$CARGO_TARGET_DIR/release"
WORK="$(mktemp -d)"
taskset -c 0 "$BIN/examples/bare_server" 127.0.0.1:55816 >/dev/null 2>&1 & SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
sleep 0.5; "$BIN/examples/bench_get" check http://127.0.0.1:55816
cat >"$WORK/closed.yaml" <<YAML
name: ab
target: { endpoint: "http://127.0.0.1:55816", channels: 4 }
load: { model: closed, warmup: 2s, stages: [{ duration: 12s, concurrency: 256 }] }
keyspaces: { k: { prefix: "bench:key", count: 1 } }
operations: [{ op: keyvalue.get, keys: k }]
YAML
echo "# ci/bench-loadtest-ab.sh $(date -u +%FT%TZ): A=$A B=$B"
for round in $(seq "$ROUNDS"); do
  for side in A B; do
    cmd="$A"; [ "$side" = B ] && cmd="$B"
    # shellcheck disable=SC2086 # the command may carry `env VAR=...`
    taskset -c 1 $cmd run "$WORK/closed.yaml" --out "$WORK/$side$round" --quiet >/dev/null 2>&1
    echo "round=$round $side $(python3 -c "import json; print(round(json.load(open('$WORK/$side$round/run.json'))['total']['rate_per_s']))")"
  done
done
