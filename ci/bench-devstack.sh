#!/usr/bin/env bash
# How long `devstack` takes for what a developer waits on, with the STAND-IN Dex image
# (ci/build-standins.sh; the real images cannot be pulled here): `up --only dex` from
# nothing, `up` again (nothing to do), `token` from the cache, `token` with a fresh login.
# Prints the median and range of each over N runs. Usage: bash ci/bench-devstack.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
runs="${1:-7}"
cargo build --locked -q --release -p devstack
eval "$(bash ci/build-standins.sh)"
bin="$CARGO_TARGET_DIR/release/devstack"
state="$(mktemp -d)"
export DEVSTACK_STATE_DIR="$state" DEVSTACK_PROJECT=dsbench DEVSTACK_DEX_PORT=15599
export DEVSTACK_NETWORK="${DEVSTACK_NETWORK:-host}" DEVSTACK_IMAGE_DEX="$PRISM_DEVSTACK_DEX_STANDIN_IMAGE"
trap '"$bin" down --reset >/dev/null 2>&1; rm -rf "$state"' EXIT

# measure NAME PREPARE COMMAND: runs PREPARE (untimed) then COMMAND, $runs times.
measure() {
  local name="$1" prepare="$2" command="$3" times=()
  for _ in $(seq "$runs"); do
    eval "$prepare" >/dev/null 2>&1
    local start end
    start=$(date +%s%N)
    eval "$command" >/dev/null 2>&1
    end=$(date +%s%N)
    times+=($(((end - start) / 1000000)))
  done
  sorted=($(printf '%s\n' "${times[@]}" | sort -n))
  printf '%-34s median %6d ms   range %d-%d ms   (%d runs)\n' "$name" \
    "${sorted[$((runs / 2))]}" "${sorted[0]}" "${sorted[$((runs - 1))]}" "$runs"
}

echo "devstack $(git rev-parse --short HEAD), docker $(docker version -f '{{.Server.Version}}'), network $DEVSTACK_NETWORK, $(nproc) CPUs"
measure "up --only dex (from nothing)" '"$bin" down --reset' '"$bin" up --only dex --pull never'
measure "up --only dex (again, unchanged)" '' '"$bin" up --only dex --pull never'
measure "token (cached)" '' '"$bin" token'
measure "token (fresh password login)" 'rm -f "$state/token.json"' '"$bin" token'
