#!/usr/bin/env bash
# Builds the REAL Dex, devstack's pinned version, from its Go module and packs it into a
# local image (prism-local/dex:<version>) the way the other server images are built: the
# binary, the libraries it links, busybox for a shell. devstack's real-Dex test runs it.
#
# Dex's go.mod replaces github.com/dexidp/dex/api/v2 with a local path, so `go install
# pkg@version` refuses it; a throw-away module that has cmd/dex as a tool (at the release
# tag's commit, as a pseudo-version) builds it, with api/v2 at the version Dex requires.
# v2.45.1 because the Go module proxy serves its commit and refuses v2.45.0's (403 "not
# available", 2026-12-02). Cached in ~/.cache/prism-dex. Prints `export` lines.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "build-dex: $*" >&2; }

version=v2.45.1
# The commit of tag v2.45.1 (github.com/dexidp/dex), committed 2026-03-03T13:39:05Z.
module_version=v0.0.0-20260303133905-11d2eeb52b42
image="prism-local/dex:$version"

if ! docker version >/dev/null 2>&1 || ! command -v go >/dev/null || ! command -v busybox >/dev/null; then
  log "no Docker engine, Go or busybox: the real-Dex test will be reported as skipped"
  exit 0
fi
cache="${PRISM_DEX_CACHE:-$HOME/.cache/prism-dex}/$version"
binary="$cache/dex"
if [ ! -x "$binary" ]; then
  log "building Dex $version from the Go module (a few minutes the first time)"
  work="$(mktemp -d)"
  mkdir -p "$cache"
  (
    cd "$work"
    printf 'module prism.local/dexbuild\n\ngo 1.25.0\n' >go.mod
    go get -tool "github.com/dexidp/dex/cmd/dex@$module_version" >&2
    # cgo: Dex's sqlite3 storage (what devstack configures) needs it.
    CGO_ENABLED=1 go build -trimpath -ldflags "-X main.version=$version" -o "$binary.tmp" \
      github.com/dexidp/dex/cmd/dex >&2
  )
  mv "$binary.tmp" "$binary"
  rm -rf "$work"
fi
reported="$("$binary" version | sed -n 's/^Dex Version: //p')"
[ "$reported" = "$version" ] || { log "built Dex reports version '$reported', not $version"; exit 1; }

# Rebuilt when the binary or this recipe changes.
sum="$(cat "$binary" "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
if [ "$(docker image inspect -f '{{index .Config.Labels "dev.prism.binary"}}' "$image" 2>/dev/null)" != "$sum" ]; then
  dir="$(mktemp -d)"
  mkdir -p "$dir/bin" "$dir/tmp" "$dir/etc/dex" "$dir/var/dex" && chmod 1777 "$dir/tmp"
  cp "$binary" "$dir/bin/dex"
  cp "$(command -v busybox)" "$dir/bin/busybox"
  for applet in sh wget cat ls; do ln -s busybox "$dir/bin/$applet"; done
  for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    mkdir -p "$dir$(dirname "$lib")"
    cp -L "$lib" "$dir$lib"
  done
  # Go's resolver reads these; an empty image has neither.
  echo "hosts: files dns" >"$dir/etc/nsswitch.conf"
  printf '127.0.0.1 localhost\n::1 localhost\n' >"$dir/etc/hosts"
  # As upstream's image: Dex runs as user dex (1001), owning its data folder, so the
  # test reads the mounted config and writes the database as that user, not as root.
  chown 1001:1001 "$dir/var/dex"
  tar -C "$dir" -c . | docker import -c 'ENV PATH=/bin' -c 'USER 1001:1001' -c "LABEL dev.prism.binary=$sum" \
    -c "LABEL org.opencontainers.image.version=$version" -c 'CMD ["dex", "version"]' - "$image" >/dev/null
  rm -rf "$dir"
  log "built image $image (the real Dex $version)"
fi
echo "export PRISM_DEVSTACK_DEX_IMAGE=$image"
