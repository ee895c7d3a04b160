//! Every image the stack runs, pinned here and nowhere else.
//!
//! `DEVSTACK_IMAGE_<SERVICE>` (service name upper-cased, `-` as `_`, for example
//! `DEVSTACK_IMAGE_OTEL_COLLECTOR`) replaces one, for a registry mirror or a local build.
//!
//! Dex must be a release with `groups` on static passwords (dexidp/dex#4456, merged
//! December 2025): the developer's `prism:admin` group comes from there. The Signoz
//! images move together (the collector and the schema migrator share a version).

/// Dex, the OIDC provider. v2.45.1 is v2.45.0 plus two connector and MySQL fixes (no
/// config change: `git diff v2.45.0 v2.45.1` in dexidp/dex touches 5 files); CI builds
/// this same version from its Go module (ci/build-dex.sh) and runs it in
/// tests/up_dex.rs, and the module proxy serves v2.45.1's commit, not v2.45.0's.
pub const DEX: &str = "ghcr.io/dexidp/dex:v2.45.1";
/// ZooKeeper, for ClickHouse's distributed DDL (Signoz creates tables `ON CLUSTER`).
pub const ZOOKEEPER: &str = "signoz/zookeeper:3.7.1";
/// ClickHouse, Signoz's store.
pub const CLICKHOUSE: &str = "clickhouse/clickhouse-server:24.1.2-alpine";
/// Signoz's schema migrator (run once per `up`, must exit 0).
pub const SCHEMA_MIGRATOR: &str = "signoz/signoz-schema-migrator:v0.129.4";
/// Signoz's OpenTelemetry collector (OTLP in, ClickHouse out).
pub const OTEL_COLLECTOR: &str = "signoz/signoz-otel-collector:v0.129.4";
/// The Signoz query service and UI.
pub const SIGNOZ: &str = "signoz/signoz:v0.92.2";

/// The image for `service`: the override from the environment, else `pinned`.
pub fn image(service: &str, pinned: &str) -> String {
    let var = format!("DEVSTACK_IMAGE_{}", service.to_uppercase().replace('-', "_"));
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| pinned.to_string())
}
