#!/usr/bin/env bash
# Instructions per request, the proxy vs the bare reference server (both `fast`
# profile), counted by valgrind's callgrind: exact and repeatable whatever else the
# machine does, unlike seconds. Each server runs under callgrind; h2load sends a 4k
# warm-up, the counters are zeroed, then N requests (-c 4 -m 64) are counted.
# With PROFILE=profiling (release + symbols) the dumps can be read per function with
# callgrind_annotate. Writes reports/baseline/instructions-latest.txt.
# Usage: bash ci/bench-instructions.sh [N]   (default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
N="${1:-20000}"
PROFILE="${PROFILE:-fast}"
command -v valgrind >/dev/null || apt-get install -y valgrind >/dev/null
. ci/bench-measure.sh
need_h2load
cargo build --profile "$PROFILE" --locked -p prism-proxy --bin prism-proxy --example bare_server --example bench_get
BIN="$CARGO_TARGET_DIR/$PROFILE"
WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
"$BIN/examples/bench_get" request-body "$WORK/get.bin"
OUT=reports/baseline/instructions-latest.txt
PORT=55811
count() { # count LABEL CMD... -> instructions per request
  local label=$1; shift
  valgrind --tool=callgrind --callgrind-out-file="$WORK/$label.out" "$@" >"$WORK/$label.log" 2>&1 & local pid=$!
  for _ in $(seq 120); do sleep 0.5; (echo >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; done
  [ "$label" = proxy ] && "$BIN/examples/bench_get" preload "http://127.0.0.1:$PORT" default
  local h2=(h2load -t 1 -c 4 -m 64 -d "$WORK/get.bin" -H content-type:application/grpc -H te:trailers
    -H x-prism-namespace:default "http://127.0.0.1:$PORT/prism.keyvalue.v1.KeyValueBasic/Get")
  "${h2[@]}" -n 4000 >/dev/null
  callgrind_control --zero "$pid" >/dev/null 2>&1
  "${h2[@]}" -n "$N" | grep -q "$N succeeded" || { echo "$label: not every request succeeded" >&2; exit 1; }
  callgrind_control --dump=measured "$pid" >/dev/null 2>&1
  sleep 1; kill "$pid"; wait "$pid" 2>/dev/null || true
  local dump; dump="$(ls "$WORK/$label.out".* | head -1)"
  awk -v n="$N" '/^(summary|totals):/ {print int($2 / n); exit}' "$dump"
}
BARE="$(count bare "$BIN/examples/bare_server" "127.0.0.1:$PORT")"
PROXY="$(count proxy "$BIN/prism-proxy" --runtime current-thread --listen "127.0.0.1:$PORT" --admin-listen 127.0.0.1:0)"
{
  echo "# ci/bench-instructions.sh $(date -u +%FT%TZ) git $(git rev-parse --short HEAD) profile $PROFILE, $N requests"
  echo "bare_instructions_per_request=$BARE"
  echo "proxy_instructions_per_request=$PROXY"
  echo "ratio_bare_over_proxy=$(python3 -c "print(round($BARE / $PROXY, 3))")"
} | tee "$OUT"
