//! postgres: one table per interface, SKIP LOCKED and LISTEN/NOTIFY; see
//! prism_proxy::backends::postgres.

use prism_proxy::backends::postgres::PostgresConfig;
use prism_proxy::config::BackendConfig;

use super::ServerBackend;
use crate::Capability;
use crate::provision::specs;

pub const POSTGRES: ServerBackend = ServerBackend {
    spec: &specs::POSTGRES,
    capabilities: &[Capability::QueueDeliveryCount, Capability::TtlRemaining],
    config: |url, prefix| {
        BackendConfig::Postgres(PostgresConfig {
            url: url.to_string(),
            prefix: prefix.to_string(),
            timeout: std::time::Duration::from_secs(5),
            pool_size: 8,
        })
    },
};
