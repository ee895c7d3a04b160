#!/usr/bin/env bash
# How much of a backend driver's behaviour the acceptance suites pin down: cargo-mutants
# mutates one driver file at a time (prism-proxy), and each mutant runs that backend's
# acceptance cases, directly and through the proxy (`<kind>::` and `proxy::<kind>::`).
# A missed mutant is a change of the driver no case noticed. Results per file go to
# $MUTANTS_OUT/<file>/ (cargo-mutants' outcomes.json), and a summary to stdout.
# Not in CI: each mutant is a rebuild of the proxy and a suite run, about a minute here.
# The unmutated baseline is skipped: cargo-mutants 27 runs it with the mutated package's
# tests (prism-proxy), not --test-package's; CI runs the suites unmutated.
# Usage: bash ci/mutants.sh [proxy/src/backends/<kind>/<part>.rs ...] [-- extra cargo-mutants args]
#   default: the four queue drivers.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_INCREMENTAL=0 CARGO_TERM_COLOR=never
command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
eval "$(bash ci/install-servers.sh)"
export PRISM_ACCEPT_STRICT=1 PRISM_ACCEPT_LATENCY=0
# Its own build folder: mutated builds never touch the shared cache.
export CARGO_TARGET_DIR="${MUTANTS_TARGET_DIR:-$HOME/.cache/prism-mutants-target}"
out="${MUTANTS_OUT:-$HOME/.cache/prism-mutants}"
files=() extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  files+=("$1"); shift
done
[ ${#files[@]} -gt 0 ] || files=(proxy/src/backends/{memstore,redis,postgres,nats}/queue.rs)
for file in "${files[@]}"; do
  kind="$(basename "$(dirname "$file")")"
  dir="$out/$(echo "$file" | tr / _)"
  mkdir -p "$dir"
  echo "== $file: acceptance cases of $kind" >&2
  cargo mutants --test-package acceptance --file "$file" \
    --output "$dir" --timeout 300 --baseline skip "${extra[@]}" \
    -- --all-features --test acceptance -- "$kind::" || true
  python3 - "$dir/mutants.out/outcomes.json" "$file" <<'PY'
import json, sys
outcomes = json.load(open(sys.argv[1]))
summary = {k: outcomes.get(k, 0) for k in ("caught", "missed", "timeout", "unviable", "success")}
print(f"{sys.argv[2]}: {summary['caught']} caught, {summary['missed']} missed, {summary['timeout']} timed out, {summary['unviable']} unviable (of {outcomes.get('total_mutants', '?')})")
for o in outcomes.get("outcomes", []):
    if o.get("summary") == "MissedMutant":
        s = o["scenario"]["Mutant"]
        print(f"  missed: {s['file']}:{s['span']['start']['line']}: {s.get('name') or s.get('replacement')}")
PY
done
