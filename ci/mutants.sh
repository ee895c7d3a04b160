#!/usr/bin/env bash
# How much of a backend driver's behaviour the acceptance suites pin down: cargo-mutants
# mutates one driver file at a time (prism-proxy), and each mutant runs that backend's
# acceptance cases of the file's interface, directly and through the proxy
# (`<kind>::<part>` matches `proxy::<kind>::<part>...` too; mod.rs and batcher.rs run
# all of the backend's cases).
# A missed mutant is a change of the driver no case noticed. Results per file go to
# $MUTANTS_OUT/<file>/ (cargo-mutants' outcomes.json), and the tables of every run kept
# there to stdout (ci/mutants_report.py).
# Not in CI: each mutant is a rebuild of the proxy and a suite run, 25-120 s here.
# A mutant whose cases run past MUTANTS_TIMEOUT seconds (default 120; one backend's cases
# take 5-30 s here) counts as caught: it hangs where it should answer.
# The unmutated baseline is skipped: cargo-mutants 27 runs it with the mutated package's
# tests (prism-proxy), not --test-package's; CI runs the suites unmutated.
# Usage: bash ci/mutants.sh [proxy/src/backends/<kind>/<part>.rs | proxy/src/backends/<kind> ...]
#                           [-- extra cargo-mutants args]
#   a file: its mutants against the cases of its interface; a driver folder: the mutants
#   of all its files against all the backend's cases. Default: the four queue drivers.
#   A sample of a driver: bash ci/mutants.sh proxy/src/backends/redis -- --shard 0/4 --sharding round-robin
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants --version 27.1.0
eval "$(bash ci/install-servers.sh)"
export PRISM_ACCEPT_STRICT=1 PRISM_ACCEPT_LATENCY=0
# Its own build folder: mutated builds never touch the shared cache. Each mutant
# rebuilds prism-proxy and relinks the suite, incrementally and without debug info (the
# mutated copy stays at one path, so increments apply): 14-53 s per build here, against
# about a minute per mutant in the first, non-incremental runs.
export CARGO_TARGET_DIR="${MUTANTS_TARGET_DIR:-$HOME/.cache/prism-mutants-target}"
export CARGO_INCREMENTAL=1 CARGO_PROFILE_DEV_DEBUG=0 CARGO_PROFILE_TEST_DEBUG=0
out="${MUTANTS_OUT:-$HOME/.cache/prism-mutants}"
files=() extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  files+=("$1"); shift
done
[ ${#files[@]} -gt 0 ] || files=(proxy/src/backends/{memstore,redis,postgres,nats}/queue.rs)
for file in "${files[@]}"; do
  file="${file%/}"
  if [ -d "$file" ]; then
    kind="$(basename "$file")" filter="$(basename "$file")::" glob="$file/*.rs"
  else
    kind="$(basename "$(dirname "$file")")" part="$(basename "$file" .rs)" glob="$file"
    case "$part" in
      mod | batcher) filter="$kind::" ;;
      *) filter="$kind::$part" ;;
    esac
  fi
  dir="$out/$(echo "$file" | tr / _)"
  mkdir -p "$dir"
  echo "${extra[*]}" > "$dir/args" # for ci/mutants_report.py
  echo "== $file: acceptance cases matching $filter" >&2
  cargo mutants --test-package acceptance --file "$glob" \
    --output "$dir" --timeout "${MUTANTS_TIMEOUT:-120}" --baseline skip "${extra[@]}" \
    -- --all-features --test acceptance -- "$filter" || true
done
# Every run kept in $out so far, per run and per driver (the tables of reports/mutants.md).
python3 ci/mutants_report.py "$out"
