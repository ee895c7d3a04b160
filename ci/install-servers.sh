#!/usr/bin/env bash
# Installs and starts what the tests need on a Debian/Ubuntu machine (as root):
# redis-server for the process provider, a Docker engine (dockerd started by hand, bridge
# and iptables off so traffic stays on loopback) and locally built images for the
# container provider, since no registry can be reached; chromium for the HTML report
# test. Idempotent.
# Prints the environment the acceptance harness needs as `export` lines on stdout;
# `eval "$(bash ci/install-servers.sh)"` applies them.
set -euo pipefail
log() { echo "install-servers: $*" >&2; }

if [ "$(id -u)" != 0 ]; then
  log "not root: skipping installs (backends that need them will be reported as skipped)"
  exit 0
fi

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v dockerd >/dev/null || need+=(docker.io)
command -v chromium >/dev/null || need+=(chromium)   # renders loadtest's HTML report in a test
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
fi
# Debian starts redis-server as a service on install; the tests start their own.
if command -v systemctl >/dev/null; then systemctl stop redis-server >/dev/null 2>&1 || true; fi
pkill -x redis-server 2>/dev/null || true

if ! docker version >/dev/null 2>&1; then
  log "starting dockerd (bridge=none, iptables=false)"
  nohup dockerd --bridge=none --iptables=false --host=unix:///var/run/docker.sock \
    >/var/log/prism-dockerd.log 2>&1 &
  for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
  docker version >/dev/null 2>&1 || { tail -20 /var/log/prism-dockerd.log >&2; log "dockerd did not start"; exit 1; }
fi

# image_from_binary NAME:TAG BINARY: the binary plus the libraries ldd lists.
image_from_binary() {
  local image="$1" binary="$2" dir
  if docker image inspect "$image" >/dev/null 2>&1; then return; fi
  dir="$(mktemp -d)"
  cp "$binary" "$dir/"
  for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done
  mkdir -p "$dir/tmp" && chmod 1777 "$dir/tmp"
  tar -C "$dir" -c . | docker import -c "ENTRYPOINT [\"/$(basename "$binary")\"]" - "$image" >/dev/null
  rm -rf "$dir"
  log "built image $image from $binary"
}
image_from_binary prism-local/redis:7 "$(command -v redis-server)"

cat <<ENV
export PRISM_ACCEPT_REDIS_IMAGE=prism-local/redis:7
export PRISM_ACCEPT_DOCKER_NETWORK=host
ENV
