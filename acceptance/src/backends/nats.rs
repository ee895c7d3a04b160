//! nats: core subjects, a JetStream work queue and a JetStream key-value bucket; see
//! prism_proxy::backends::nats.

use std::time::Duration;

use prism_proxy::backends::nats::NatsConfig;
use prism_proxy::config::BackendConfig;

use super::ServerBackend;
use crate::Capability;
use crate::provision::ServerSpec;
use crate::provision::specs::{answers, strings};

pub const NATS: ServerBackend = ServerBackend {
    spec: &SERVER,
    capabilities: &[Capability::QueueDeliveryCount],
    config: |url, prefix| {
        BackendConfig::Nats(NatsConfig {
            prefix: prefix.to_string(),
            timeout: std::time::Duration::from_secs(5),
            ..NatsConfig::new(url)
        })
    },
};

/// The `version` of the server's `INFO` greeting (what `/varz` reports too).
async fn version(url: String) -> anyhow::Result<String> {
    let client = async_nats::connect(url).await?;
    Ok(format!("nats-server {}", client.server_info().version))
}

/// NATS with JetStream: ready when it greets with INFO.
pub static SERVER: ServerSpec = ServerSpec {
    backend: "nats",
    binary: "nats-server",
    binary_dirs: &[],
    user: None,
    prepare: None,
    args: |port, dir| {
        let port = port.to_string();
        strings(&["-a", "127.0.0.1", "-p", &port, "-js", "-sd", dir])
    },
    image: ("nats", "2.10"),
    container_env: &[],
    container_port: 4222,
    container_args: |host, port| {
        let port = port.to_string();
        strings(&["-a", host, "-p", &port, "-js", "-sd", "/tmp/nats"])
    },
    url: |addr| format!("nats://{addr}"),
    ready: |addr| answers(addr, b"", b"INFO "),
    version: |url| Box::pin(version(url)),
    start_timeout: Duration::from_secs(20),
};
