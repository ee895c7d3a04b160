#!/usr/bin/env bash
# Builds the STAND-IN images devstack's tests run in place of images that cannot be pulled
# here: prism-local/dex-standin (testkit's dex-standin binary as /bin/dex, plus busybox for
# the health check's wget). Rebuilt when the binary changes. Needs cargo and a Docker
# engine; prints `export` lines like install-servers.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "build-standins: $*" >&2; }
if ! docker version >/dev/null 2>&1 || ! command -v busybox >/dev/null; then
  log "no Docker engine or busybox: devstack's stand-in tests will be reported as skipped"
  exit 0
fi
cargo build --locked -q -p oidc-test-issuer --bin dex-standin >&2
binary="${CARGO_TARGET_DIR:-target}/debug/dex-standin"
image=prism-local/dex-standin:test
sum="$(sha256sum "$binary" | cut -c1-16)"
if [ "$(docker image inspect -f '{{index .Config.Labels "dev.prism.binary"}}' "$image" 2>/dev/null)" != "$sum" ]; then
  dir="$(mktemp -d)"
  mkdir -p "$dir/bin" "$dir/tmp" && chmod 1777 "$dir/tmp"
  cp "$binary" "$dir/bin/dex"
  cp "$(command -v busybox)" "$dir/bin/busybox"
  for applet in sh wget; do ln -s busybox "$dir/bin/$applet"; done
  for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done
  tar -C "$dir" -c . | docker import -c 'ENV PATH=/bin' -c "LABEL dev.prism.binary=$sum" -c 'CMD ["dex"]' - "$image" >/dev/null
  rm -rf "$dir"
  log "built image $image"
fi
echo "export PRISM_DEVSTACK_DEX_STANDIN_IMAGE=$image"
