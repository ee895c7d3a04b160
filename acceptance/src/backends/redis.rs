//! redis: strings, PUBLISH/SUBSCRIBE and streams; see prism_proxy::backends::redis.

use prism_proxy::backends::redis::RedisConfig;
use prism_proxy::config::BackendConfig;

use super::ServerBackend;
use crate::Capability;
use crate::provision::specs;

pub const REDIS: ServerBackend = ServerBackend {
    spec: &specs::REDIS,
    capabilities: &[
        Capability::PubsubDeliveredCount,
        Capability::QueueDeliveryCount,
        Capability::TtlRemaining,
    ],
    config: |url, prefix| {
        BackendConfig::Redis(RedisConfig {
            url: url.to_string(),
            prefix: prefix.to_string(),
            timeout: std::time::Duration::from_secs(5),
        })
    },
};
