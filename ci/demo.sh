#!/usr/bin/env bash
# The main job until the load generator exists: build and start the proxy with the example
# memstore config, call every interface through the Rust client, then drain it with SIGTERM.
# Usage: bash ci/demo.sh [CONFIG]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
CONFIG="${1:-proxy/config/memstore.yaml}"

cargo build --release --locked -p prism-proxy --bin prism-proxy --example tour
BIN="$CARGO_TARGET_DIR/release"
LOG="$(mktemp)"
"$BIN/prism-proxy" --config "$CONFIG" --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$LOG" 2>&1 &
PID=$!
trap 'kill "$PID" 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "ready" "$LOG" && break; sleep 0.1; done
READY="$(grep -m1 'prism-proxy ready' "$LOG")" || { cat "$LOG"; exit 1; }
echo "$READY"
GRPC="$(sed -E 's/.*grpc=([^ ]+).*/\1/' <<<"$READY")"
ADMIN="$(sed -E 's/.*admin=([^ ]+).*/\1/' <<<"$READY")"

"$BIN/examples/tour" "http://$GRPC" default
echo "--- /readyz"
curl -fsS "http://$ADMIN/readyz"
echo "--- /metrics (keyvalue.get)"
curl -fsS "http://$ADMIN/metrics" | grep 'operation="keyvalue.get"' | grep -v bucket || true

kill -TERM "$PID"
wait "$PID" && echo "proxy drained and exited 0"
trap - EXIT
