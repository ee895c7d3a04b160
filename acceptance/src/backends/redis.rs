//! redis: strings, PUBLISH/SUBSCRIBE and streams; see prism_proxy::backends::redis.

use std::time::Duration;

use prism_proxy::backends::redis::RedisConfig;
use prism_proxy::config::BackendConfig;

use super::ServerBackend;
use crate::Capability;
use crate::provision::ServerSpec;
use crate::provision::specs::{answers, strings};

pub const REDIS: ServerBackend = ServerBackend {
    spec: &SERVER,
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

/// Redis: ready when it answers PING.
pub static SERVER: ServerSpec = ServerSpec {
    backend: "redis",
    binary: "redis-server",
    binary_dirs: &[],
    user: None,
    prepare: None,
    args: |port, dir| {
        let port = port.to_string();
        strings(&[
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--dir",
            dir,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
    },
    image: ("redis", "7"),
    container_env: &[],
    container_port: 6379,
    container_args: |host, port| {
        let port = port.to_string();
        strings(&["--port", &port, "--bind", host, "--save", "", "--appendonly", "no"])
    },
    url: |addr| format!("redis://{addr}"),
    ready: |addr| answers(addr, b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
    start_timeout: Duration::from_secs(20),
};
