//! Every image the stack runs, pinned here and nowhere else.
//!
//! `DEVSTACK_IMAGE_<SERVICE>` (service name upper-cased, `-` as `_`, for example
//! `DEVSTACK_IMAGE_OTEL_COLLECTOR`) replaces one, for a registry mirror or a local build.
//!
//! Dex must be a release with `groups` on static passwords (dexidp/dex#4456, merged
//! December 2025): the developer's `prism:admin` group comes from there. The Signoz
//! images move together, as one set upstream ships.

/// Dex, the OIDC provider. v2.45.1 is v2.45.0 plus two connector and MySQL fixes (no
/// config change: `git diff v2.45.0 v2.45.1` in dexidp/dex touches 5 files); CI builds
/// this same version from its Go module (ci/build-dex.sh) and runs it in
/// tests/up_dex.rs, and the module proxy serves v2.45.1's commit, not v2.45.0's.
pub const DEX: &str = "ghcr.io/dexidp/dex:v2.45.1";
// The Signoz set: the images upstream's last compose file pairs, signoz/signoz
// `deploy/docker/docker-compose.yaml` at tag v0.129.0 (2026-06-18; the compose files were
// removed after it in favour of Foundry, which pins `:latest`). devstack/UPSTREAM.md
// records each setting checked against that file; move these together, and redo it.

/// ZooKeeper, for ClickHouse's distributed DDL (Signoz creates tables `ON CLUSTER`).
pub const ZOOKEEPER: &str = "signoz/zookeeper:3.7.1";
/// ClickHouse, Signoz's store. 24.8 or later: the migrations add `JSON(...)` columns.
pub const CLICKHOUSE: &str = "clickhouse/clickhouse-server:25.5.6";
/// Signoz's OpenTelemetry collector (OTLP in, ClickHouse out); the same image runs the
/// schema migrations (`migrate bootstrap`, `sync up`, `async up`).
pub const OTEL_COLLECTOR: &str = "signoz/signoz-otel-collector:v0.144.5";
/// The Signoz query service and UI.
pub const SIGNOZ: &str = "signoz/signoz:v0.129.0";
/// The release of the `histogramQuantile` executable upstream's `init-clickhouse` fetches
/// (github.com/SigNoz/signoz, release `histogram-quantile/v0.0.1`).
pub const HISTOGRAM_QUANTILE: &str = "v0.0.1";

// The backends of `up --with`: the official images, at the majors the proxy's
// acceptance suites run against (CI runs them from local images of the same servers).

/// Redis (`backend-redis`).
pub const REDIS: &str = "redis:7.4-alpine";
/// PostgreSQL (`backend-postgres`).
pub const POSTGRES: &str = "postgres:17-alpine";
/// NATS with JetStream (`backend-nats`).
pub const NATS: &str = "nats:2.11-alpine";

/// The image for `service`: the override from the environment, else `pinned`.
pub fn image(service: &str, pinned: &str) -> String {
    let var = format!("DEVSTACK_IMAGE_{}", service.to_uppercase().replace('-', "_"));
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| pinned.to_string())
}
