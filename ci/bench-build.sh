#!/usr/bin/env bash
# Cold build times for reports/baseline/build.md: the README's main command (release
# loadtest) and a debug devstack, each into an empty target folder, sources fetched first.
# Usage: bash ci/bench-build.sh [REV]   (REV: build that commit from a temporary clone)
set -euo pipefail
cd "$(dirname "$0")/.."
src="$PWD"
if [ -n "${1:-}" ]; then src="$(mktemp -d)"; git clone -q . "$src"; git -C "$src" checkout -q "$1"; fi
export CARGO_INCREMENTAL=0
(cd "$src" && cargo fetch --locked)
measure() { # name cargo-args...
  local name=$1 dir; shift
  dir="$(mktemp -d)"
  local t0=$(date +%s.%N)
  (cd "$src" && cargo build --locked "$@" --target-dir "$dir" >"$dir.log" 2>&1)
  local t1=$(date +%s.%N)
  echo "$name: $(echo "$t1 - $t0" | bc) s, $(grep -c Compiling "$dir.log") crates ($(git -C "$src" rev-parse --short HEAD))"
  rm -rf "$dir" "$dir.log"
}
measure "cargo build --release -p loadtest" --release -p loadtest
measure "cargo build -p devstack" -p devstack
