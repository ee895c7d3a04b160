//! nats: pubsub_basic on core NATS subjects, queue_basic on a JetStream work-queue stream
//! (one durable pull consumer per queue, the consumer's ack wait as the longest
//! visibility without renewal), keyvalue_basic on a JetStream key-value bucket.
//!
//! The client reconnects by itself (and re-subscribes) after the server restarts.
//! Names in NATS: subjects `prism.t.<topic>` and `prism.q.<hash>.<queue>`, stream
//! `PRISM_Q_<hash>`, bucket `prism_kv_<hash>`, where `<hash>` names the configured prefix
//! (names in NATS allow few characters, so other bytes are escaped as `=XX`).

mod keyvalue;
mod pubsub;
mod queue;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::driver::{LiveSubscriptions, default_timeout};
use super::{Backend, DriverConfig, DriverInfo, HealthCheck};
use crate::{BackendError, Interface};

/// `backend: { type: nats, url: nats://127.0.0.1:4222, prefix: "app", ack_wait: 30s,
/// queue_inactive_threshold: 1h }`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// `nats://host:port` (several separated by commas).
    pub url: String,
    /// Names every subject, stream and bucket this namespace uses.
    #[serde(default)]
    pub prefix: String,
    /// Longest wait for one request to the server.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The queue consumers' ack wait: an unacknowledged message comes back after this
    /// even if the proxy that handed it out is gone. Longer visibilities are kept alive
    /// by the proxy (progress acks).
    #[serde(default = "default_ack_wait", with = "humantime_serde")]
    pub ack_wait: Duration,
    /// A queue no one has received from for this long has its JetStream consumer removed
    /// by the server (JetStream's `inactive_threshold`), so queue names used once do not
    /// hold a consumer each forever. Its messages stay in the stream and are delivered
    /// when the queue is next received from; their delivery counts start over.
    #[serde(default = "default_queue_inactive_threshold", with = "humantime_serde")]
    pub queue_inactive_threshold: Duration,
}

fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}

fn default_queue_inactive_threshold() -> Duration {
    Duration::from_secs(3600)
}

impl NatsConfig {
    /// The defaults, for the server at `url`.
    pub fn new(url: &str) -> NatsConfig {
        NatsConfig {
            url: url.to_string(),
            prefix: String::new(),
            timeout: default_timeout(),
            ack_wait: default_ack_wait(),
            queue_inactive_threshold: default_queue_inactive_threshold(),
        }
    }
}

impl DriverConfig for NatsConfig {
    const DRIVER: DriverInfo = DriverInfo {
        kind: "nats",
        interfaces: &[Interface::KeyvalueBasic, Interface::PubsubBasic, Interface::QueueBasic],
        summary: "NATS 2.10 or later with JetStream: KV bucket, core subjects, work-queue streams",
    };

    fn shared_server(&self) -> Option<(String, &str)> {
        Some((self.url.to_ascii_lowercase(), &self.prefix))
    }

    fn problems(&self) -> Vec<(&'static str, String)> {
        [
            ("ack_wait", self.ack_wait),
            ("queue_inactive_threshold", self.queue_inactive_threshold),
        ]
        .into_iter()
        .filter(|(_, value)| *value < Duration::from_secs(1))
        .map(|(field, _)| (field, "must be at least 1s".to_string()))
        .collect()
    }

    async fn connect(&self) -> Result<Backend, BackendError> {
        Ok(Nats::connect(self).await?.backend())
    }
}

pub(crate) struct Nats {
    client: async_nats::Client,
    jetstream: async_nats::jetstream::Context,
    /// Stands for the prefix in names that allow only `[A-Za-z0-9_-]`.
    tag: String,
    prefix: String,
    timeout: Duration,
    ack_wait: Duration,
    queue_inactive_threshold: Duration,
    live: LiveSubscriptions,
    kv: tokio::sync::OnceCell<async_nats::jetstream::kv::Store>,
    queues: queue::Queues,
}

impl Nats {
    /// Starts connecting in the background: the proxy starts (not ready) while the server
    /// is down.
    pub(crate) async fn connect(config: &NatsConfig) -> Result<Nats, BackendError> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(config.timeout)
            .request_timeout(Some(config.timeout))
            .retry_on_initial_connect()
            .connect(config.url.as_str())
            .await
            .map_err(|e| BackendError::invalid("backend.url", format!("cannot use {:?}: {e}", config.url)))?;
        let mut jetstream = async_nats::jetstream::new(client.clone());
        jetstream.set_timeout(config.timeout);
        Ok(Nats {
            client,
            jetstream,
            tag: format!("{:016x}", fnv1a(config.prefix.as_bytes())),
            prefix: config.prefix.clone(),
            timeout: config.timeout,
            ack_wait: config.ack_wait,
            queue_inactive_threshold: config.queue_inactive_threshold,
            live: LiveSubscriptions::default(),
            kv: tokio::sync::OnceCell::new(),
            queues: queue::Queues::default(),
        })
    }

    pub(crate) fn backend(self) -> Backend {
        let nats = Arc::new(self);
        Backend {
            kind: NatsConfig::DRIVER.kind,
            keyvalue_basic: Some(nats.clone()),
            keyvalue_ttl: None,
            keyvalue_scan: None,
            keyvalue_batch: None,
            pubsub_basic: Some(nats.clone()),
            queue_basic: Some(nats.clone()),
            timeseries_basic: None,
            health: nats,
        }
    }
}

/// FNV-1a: a short stable name for arbitrary text (stable across processes and Rust
/// versions, unlike std's hasher).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `raw` as one subject token: `[A-Za-z0-9_-]` kept, every other byte as `=XX`.
fn token(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// Every NATS failure the driver sees is about reaching the server or JetStream (the
/// names it uses are valid by construction), so a retry may help.
fn error(what: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Unavailable(format!("nats: {what}: {e}"))
}

#[async_trait]
impl HealthCheck for Nats {
    /// A round trip to JetStream, which the driver needs: a connection that says
    /// `Connected` may lead nowhere (a partition shows only after the client's missed
    /// pings, minutes later).
    async fn check(&self) -> Result<(), BackendError> {
        let state = self.client.connection_state();
        if state != async_nats::connection::State::Connected {
            return Err(BackendError::Unavailable(format!("nats: connection {state:?}")));
        }
        super::driver::bounded("nats", self.timeout, async {
            self.jetstream
                .query_account()
                .await
                .map(drop)
                .map_err(|e| BackendError::Unavailable(format!("nats: JetStream account info: {e}")))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keep_safe_characters_and_escape_the_rest() {
        assert_eq!(token("abc-_9"), "abc-_9");
        assert_eq!(token("a.b *>#:"), "a=2Eb=20=2A=3E=23=3A");
    }
}
