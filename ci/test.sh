#!/usr/bin/env bash
# Runs every test with the set-up it needs. Usage: bash ci/test.sh [extra cargo test args]
# Works on a fresh Debian/Ubuntu machine with Rust; CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are cached outside the clone so repeated runs (and CI on the same machine)
# reuse them.
# One-shot builds: incremental state only fills the disk (it reached tens of GB here).
export CARGO_INCREMENTAL=0
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/prism-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# The shared cache only grows (every dependency change leaves old artifacts behind); it
# once filled this machine's disk. Below 10 GB free, start it over: a cold build is
# minutes, a full disk kills the run.
mkdir -p "$CARGO_TARGET_DIR"
free_kb="$(df --output=avail -k "$CARGO_TARGET_DIR" | tail -1)"
if [ "$free_kb" -lt $((10 * 1024 * 1024)) ]; then
  echo "== only $((free_kb / 1024 / 1024)) GB free: removing the build cache $CARGO_TARGET_DIR/debug"
  rm -rf "$CARGO_TARGET_DIR/debug"
fi

# In CI a backend the acceptance harness cannot provision is a failure, not a skip, and
# the full run writes the matrix where it is committed (reports/compliance.*); local runs
# write a folder of their own under reports/runs/.
if [ "${CI:-}" = "true" ]; then
  export PRISM_ACCEPT_STRICT=1
  export PRISM_ACCEPT_UPDATE_MATRIX=1
fi

# Servers, a Docker engine and local images for the backend tests (root only; otherwise
# those tests are reported as skipped, or fail in strict mode).
echo "== installing and starting test servers"
eval "$(bash ci/install-servers.sh)"
eval "$(bash ci/build-standins.sh)"
eval "$(bash ci/build-dex.sh)"
eval "$(bash ci/install-oidc-provider.sh)"

# Server processes already running (the machine's own services) are not ours to judge.
servers="redis-server valkey-server nats-server clickhouse-serv postgres"
before=" $(for server in $servers; do pgrep -x "$server" || true; done | tr '\n' ' ') "

echo "== cargo test (workspace), target dir $CARGO_TARGET_DIR, strict=${PRISM_ACCEPT_STRICT:-0}"
cargo test --workspace --locked --all-features "$@"

# The browser test is #[ignore]d where chromium is missing; here it must run.
if command -v chromium >/dev/null; then
  echo "== loadtest HTML report in headless chromium"
  # --workspace: the same features as the run above, so nothing is built again
  cargo test --workspace --all-features --locked --test html_chromium -- --ignored
elif [ "${CI:-}" = "true" ]; then
  echo "FAIL: chromium is missing in CI" >&2
  exit 1
fi

# Nothing the harness started may outlive it.
leftovers=""
if command -v docker >/dev/null && docker version >/dev/null 2>&1; then
  leftovers+="$(docker ps -aq --filter label=dev.prism.acceptance)"
  leftovers+="$(docker ps -aq --filter label=dev.prism.devstack.project)"
  leftovers+="$(docker volume ls -q --filter label=dev.prism.devstack.project)"
fi
# (process names are cut at 15 characters: clickhouse-server is "clickhouse-serv")
for server in $servers; do
  for pid in $(pgrep -x "$server" || true); do
    case "$before" in *" $pid "*) ;; *) leftovers+="$pid($server) " ;; esac
  done
done
if [ -n "$leftovers" ]; then
  echo "FAIL: containers or server processes left behind: $leftovers" >&2
  exit 1
fi
echo "== no containers or server processes left behind"
