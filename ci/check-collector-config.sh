#!/usr/bin/env bash
# Checks the collector config `devstack render` writes with the REAL SigNoz collector's
# own config validation (its component factories; what `otelcol validate` does), built
# from the collector's Go module. Not run in CI: the first build downloads about 1 GB of
# modules and compiled for 32 minutes on 2 cores shared with a cargo build (cached after, in
# ~/.cache/prism-signoz-collector; the validator is 440 MB).
#
# The version: devstack pins signoz/signoz-otel-collector:v0.144.5 (upstream's compose),
# but the Go module proxy refuses v0.144.5 (403 "not available", 2026-12-02) and serves
# v0.144.6, its next patch (same exporters and config fields; it adds migrations). The
# throw-away module carries the collector's own `replace` lines (its go.mod at that tag)
# and its go.sum (some datadog-agent pre-releases are not in the checksum database), and
# takes github.com/bytedance/sonic v1.15.5: v1.14.1, which the collector requires, does
# not build with Go 1.26.
#
# Usage: bash ci/check-collector-config.sh   (prints the verdict; exit 1 if invalid)
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "check-collector-config: $*" >&2; }

version=v0.144.6
cache="${PRISM_COLLECTOR_CACHE:-$HOME/.cache/prism-signoz-collector}/$version"
validate="$cache/validate"
command -v go >/dev/null || { log "Go is needed (go 1.26)"; exit 2; }

sum="$(cat ci/collector-check/main.go "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16)"
if [ ! -x "$validate" ] || [ "$(cat "$cache/recipe" 2>/dev/null)" != "$sum" ]; then
  log "building the collector's config validation at $version (cold: about 30 minutes)"
  work="$(mktemp -d)"
  mkdir -p "$cache" "$work/cmd/validate"
  cp ci/collector-check/main.go "$work/cmd/validate/main.go"
  (
    cd "$work"
    cat >go.mod <<MOD
module prism.local/collectorcheck

go 1.25.0

require github.com/SigNoz/signoz-otel-collector $version

replace (
	github.com/ClickHouse/ch-go v0.66.0 => github.com/SigNoz/ch-go v0.66.0-dd-sketch
	github.com/ClickHouse/clickhouse-go/v2 v2.36.0 => github.com/SigNoz/clickhouse-go/v2 v2.36.0-dd-sketch
	github.com/segmentio/ksuid => github.com/signoz/ksuid v1.0.4
	github.com/vjeantet/grok => github.com/signoz/grok v1.0.3
	go.opencensus.io => go.opencensus.io v0.23.0
)

exclude github.com/StackExchange/wmi v1.2.0
MOD
    export GOFLAGS=-mod=mod
    go mod download "github.com/SigNoz/signoz-otel-collector@$version"
    cp "$(go env GOMODCACHE)/github.com/!sig!noz/signoz-otel-collector@$version/go.sum" go.sum
    chmod u+w go.sum
    go get github.com/bytedance/sonic@v1.15.5 >&2
    go build -trimpath -o "$validate.tmp" ./cmd/validate >&2
  )
  mv "$validate.tmp" "$validate"
  echo "$sum" >"$cache/recipe"
  rm -rf "$work"
fi

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cargo run -q -p devstack -- --state-dir "$out/state" render --out "$out/render" >/dev/null
config="$out/render/signoz/otel-collector.yaml"
# The collector's environment in the stack (the config reads it with ${env:...}).
export LOW_CARDINAL_EXCEPTION_GROUPING=false
if "$validate" "$config"; then
  log "valid: devstack's collector config, by signoz-otel-collector $version's own validation"
else
  log "INVALID: devstack's collector config (rendered at $config)"
  exit 1
fi
