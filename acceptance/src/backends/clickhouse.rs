//! clickhouse: time series in a MergeTree table with batched inserts; see
//! prism_proxy::backends::clickhouse.

use prism_proxy::backends::clickhouse::ClickhouseConfig;
use prism_proxy::config::BackendConfig;

use super::ServerBackend;
use crate::provision::specs;

pub const CLICKHOUSE: ServerBackend = ServerBackend {
    spec: &specs::CLICKHOUSE,
    capabilities: &[],
    config: |url, prefix| {
        BackendConfig::Clickhouse(ClickhouseConfig {
            prefix: prefix.to_string(),
            ..ClickhouseConfig::new(url)
        })
    },
};
