#!/usr/bin/env bash
# Installs npm's oidc-provider (the version pinned in devstack/tests/oidc-provider's
# package-lock.json), an OpenID-certified provider devstack's tests log in against
# (device flow, refresh, RS256). Needs Node 20.19+ and npm. Prints an `export` line;
# without Node the test is reported as skipped (a failure in strict mode).
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$PWD/devstack/tests/oidc-provider"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install-oidc-provider: no node or npm: the oidc-provider test will be reported as skipped" >&2
  exit 0
fi
npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
echo "export PRISM_OIDC_PROVIDER_DIR='$dir'"
