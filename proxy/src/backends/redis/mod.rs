//! redis: keyvalue_basic/ttl/scan/batch on strings, pubsub_basic on PUBLISH/SUBSCRIBE,
//! queue_basic on streams with one consumer group per queue.
//!
//! Names in Redis (all after the configured `prefix`):
//! `k:<key>` a value, `t:<topic>` a channel, `q:<queue>` a stream and `qd:<queue>` the
//! hash of its in-flight messages' visibility deadlines.
//!
//! Commands go through one multiplexed [`ConnectionManager`], which reconnects by itself
//! after the server restarts; each subscription holds its own connection.

mod keyvalue;
mod pubsub;
mod queue;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;

use super::driver::{LiveSubscriptions, bounded, default_timeout};
use super::fanout::Fanout;
use super::{Backend, DriverConfig, DriverInfo, HealthCheck};
use crate::{BackendError, Interface};

/// `backend: { type: redis, url: redis://127.0.0.1:6379, prefix: "app:", timeout: 5s }`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key, channel and stream name.
    #[serde(default)]
    pub prefix: String,
    /// Longest wait for one command.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

impl DriverConfig for RedisConfig {
    const DRIVER: DriverInfo = DriverInfo {
        kind: "redis",
        interfaces: &[
            Interface::KeyvalueBasic,
            Interface::KeyvalueTtl,
            Interface::KeyvalueScan,
            Interface::KeyvalueBatch,
            Interface::PubsubBasic,
            Interface::QueueBasic,
        ],
        summary: "Redis 6.2 or later (and Valkey): strings, PUBLISH/SUBSCRIBE, streams",
    };

    fn shared_server(&self) -> Option<(String, &str)> {
        Some((self.url.to_ascii_lowercase(), &self.prefix))
    }

    async fn connect(&self) -> Result<Backend, BackendError> {
        Ok(Redis::connect(self)?.backend())
    }
}

pub(crate) struct Redis {
    conn: ConnectionManager,
    prefix: Vec<u8>,
    timeout: Duration,
    live: LiveSubscriptions,
    subscriptions: Fanout<pubsub::Sink>,
}

impl Redis {
    /// Sets up the driver without touching the server: the first command connects, so
    /// the proxy starts (not ready) while Redis is down.
    pub(crate) fn connect(config: &RedisConfig) -> Result<Redis, BackendError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| BackendError::invalid("backend.url", format!("not a Redis URL: {e}")))?;
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager).map_err(error)?;
        Ok(Redis {
            subscriptions: pubsub::fanout(client, conn.clone(), config.timeout),
            conn,
            prefix: config.prefix.as_bytes().to_vec(),
            timeout: config.timeout,
            live: LiveSubscriptions::default(),
        })
    }

    pub(crate) fn backend(self) -> Backend {
        let redis = Arc::new(self);
        Backend {
            kind: RedisConfig::DRIVER.kind,
            keyvalue_basic: Some(redis.clone()),
            keyvalue_ttl: Some(redis.clone()),
            keyvalue_scan: Some(redis.clone()),
            keyvalue_batch: Some(redis.clone()),
            pubsub_basic: Some(redis.clone()),
            queue_basic: Some(redis.clone()),
            timeseries_basic: None,
            health: redis,
        }
    }

    /// `<prefix><kind>:<name>`.
    fn name(&self, kind: &str, name: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + kind.len() + 1 + name.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(kind.as_bytes());
        out.push(b':');
        out.extend_from_slice(name);
        out
    }

    /// Runs one command (or pipeline, or script) under the configured timeout.
    async fn run<T: redis::FromRedisValue + Send>(&self, cmd: impl Runnable) -> Result<T, BackendError> {
        let mut conn = self.conn.clone();
        bounded(
            "redis",
            self.timeout,
            async move { cmd.run(&mut conn).await.map_err(error) },
        )
        .await
    }
}

/// Something that can be sent on a connection: a command, a pipeline or a script call.
trait Runnable: Send {
    fn run<T: redis::FromRedisValue + Send>(
        self,
        conn: &mut ConnectionManager,
    ) -> impl std::future::Future<Output = redis::RedisResult<T>> + Send;
}

impl Runnable for redis::Cmd {
    async fn run<T: redis::FromRedisValue + Send>(self, conn: &mut ConnectionManager) -> redis::RedisResult<T> {
        self.query_async(conn).await
    }
}

impl Runnable for redis::Pipeline {
    async fn run<T: redis::FromRedisValue + Send>(self, conn: &mut ConnectionManager) -> redis::RedisResult<T> {
        self.query_async(conn).await
    }
}

impl Runnable for redis::ScriptInvocation<'_> {
    async fn run<T: redis::FromRedisValue + Send>(self, conn: &mut ConnectionManager) -> redis::RedisResult<T> {
        self.invoke_async(conn).await
    }
}

/// Connection trouble and a server that is loading or failing over are retryable
/// (UNAVAILABLE); anything else is a bug on one side (INTERNAL).
fn error(e: redis::RedisError) -> BackendError {
    let transient_code = matches!(
        e.code(),
        Some("LOADING" | "TRYAGAIN" | "BUSY" | "MASTERDOWN" | "CLUSTERDOWN" | "READONLY")
    );
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() || transient_code {
        BackendError::Unavailable(format!("redis: {e}"))
    } else {
        BackendError::Internal(format!("redis: {e}"))
    }
}

#[async_trait]
impl HealthCheck for Redis {
    async fn check(&self) -> Result<(), BackendError> {
        let pong: String = self.run(redis::cmd("PING")).await?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(BackendError::Internal(format!("redis answered PING with {pong:?}")))
        }
    }
}
