//! nats: core subjects, a JetStream work queue and a JetStream key-value bucket; see
//! prism_proxy::backends::nats.

use prism_proxy::backends::nats::NatsConfig;
use prism_proxy::config::BackendConfig;

use super::ServerBackend;
use crate::Capability;
use crate::provision::specs;

pub const NATS: ServerBackend = ServerBackend {
    spec: &specs::NATS,
    capabilities: &[Capability::QueueDeliveryCount],
    config: |url, prefix| {
        BackendConfig::Nats(NatsConfig {
            url: url.to_string(),
            prefix: prefix.to_string(),
            timeout: std::time::Duration::from_secs(5),
            ack_wait: std::time::Duration::from_secs(30),
        })
    },
};
