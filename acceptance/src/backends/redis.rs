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

/// `INFO server`'s version: `redis 7.0.15`, or `valkey 8.0.2` for Valkey (which also
/// reports the Redis version it is compatible with).
async fn version(url: String) -> anyhow::Result<String> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("server").query_async(&mut connection).await?;
    version_of(&info).map_err(anyhow::Error::msg)
}

fn version_of(info: &str) -> Result<String, String> {
    let field = |name: &str| {
        info.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':').map(str::trim))
    };
    match (field("valkey_version"), field("redis_version")) {
        (Some(valkey), _) => Ok(format!("valkey {valkey}")),
        (None, Some(redis)) => Ok(format!("redis {redis}")),
        (None, None) => Err(format!("INFO server names no redis_version: {:.80}", info.trim())),
    }
}

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
    version: |url| Box::pin(version(url)),
    start_timeout: Duration::from_secs(20),
};

#[cfg(test)]
mod tests {
    #[test]
    fn info_server_names_redis_or_valkey() {
        let redis = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(super::version_of(redis).unwrap(), "redis 7.0.15");
        let valkey = "# Server\r\nredis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.2\r\n";
        assert_eq!(super::version_of(valkey).unwrap(), "valkey 8.0.2");
        assert!(super::version_of("# Server\r\n").unwrap_err().contains("redis_version"));
    }
}
