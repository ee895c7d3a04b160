//! clickhouse: timeseries_basic in one MergeTree table, over HTTP with the `clickhouse`
//! crate. The schema uses only types ClickHouse 18.16 (Debian's) already has: time as
//! Int64 Unix milliseconds, tags and fields as parallel arrays. Aggregations run in
//! ClickHouse, percentiles by nearest rank exactly as the interface defines them.
//!
//! Appends go through a [`batcher`]: many callers' events become one INSERT.

mod batcher;
mod rows;
mod timeseries;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::driver::{bounded, default_timeout};
use super::{Backend, DriverConfig, DriverInfo, HealthCheck};
use crate::{BackendError, Interface};

/// `backend: { type: clickhouse, url: http://127.0.0.1:8123, database: default }`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickhouseConfig {
    /// The HTTP interface, `http://host:8123`.
    pub url: String,
    /// The database holding the events table.
    #[serde(default = "default_database")]
    pub database: String,
    /// The user to log in as (ClickHouse's `default` when absent).
    #[serde(default)]
    pub user: Option<String>,
    /// That user's password.
    #[serde(default)]
    pub password: Option<String>,
    /// Prepended to every stream name.
    #[serde(default)]
    pub prefix: String,
    /// Longest wait for one query or insert.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// An insert is sent once this many events wait...
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// ...or once the oldest waiting event has waited this long.
    #[serde(default = "default_flush_interval", with = "humantime_serde")]
    pub flush_interval: Duration,
    /// Events accepted but not yet written, at most; appends beyond wait for room.
    #[serde(default = "default_buffer_rows")]
    pub buffer_rows: usize,
    /// INSERTs in flight at once: the next batch is sent while ClickHouse still writes
    /// the one before.
    #[serde(default = "default_concurrent_inserts")]
    pub concurrent_inserts: usize,
}

fn default_database() -> String {
    "default".into()
}
fn default_batch_rows() -> usize {
    10_000
}
fn default_flush_interval() -> Duration {
    Duration::from_millis(20)
}
fn default_concurrent_inserts() -> usize {
    2
}
fn default_buffer_rows() -> usize {
    100_000
}

impl ClickhouseConfig {
    /// A config with every default, for `url`.
    pub fn new(url: &str) -> ClickhouseConfig {
        ClickhouseConfig {
            url: url.to_string(),
            database: default_database(),
            user: None,
            password: None,
            prefix: String::new(),
            timeout: default_timeout(),
            batch_rows: default_batch_rows(),
            flush_interval: default_flush_interval(),
            buffer_rows: default_buffer_rows(),
            concurrent_inserts: default_concurrent_inserts(),
        }
    }
}

const TABLE: &str = "prism_events";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS prism_events (
    stream String,
    ts Int64,
    seq UInt64,
    tag_keys Array(String),
    tag_values Array(String),
    field_keys Array(String),
    field_values Array(Float64)
) ENGINE = MergeTree() ORDER BY (stream, ts, seq)";

impl DriverConfig for ClickhouseConfig {
    const DRIVER: DriverInfo = DriverInfo {
        kind: "clickhouse",
        interfaces: &[Interface::TimeseriesBasic],
        summary: "ClickHouse 18.16 or later over HTTP: one MergeTree table, batched inserts",
    };

    fn shared_server(&self) -> Option<(String, &str)> {
        Some((
            format!("{} database {}", self.url.to_ascii_lowercase(), self.database),
            &self.prefix,
        ))
    }

    async fn connect(&self) -> Result<Backend, BackendError> {
        Ok(Clickhouse::connect(self)?.backend())
    }
}

/// The driver instance; also usable directly (its batcher's behaviour is tested that way).
pub struct Clickhouse {
    client: clickhouse::Client,
    prefix: String,
    timeout: Duration,
    schema: Arc<OnceCell<()>>,
    batcher: batcher::Batcher,
}

impl Clickhouse {
    /// Sets up the client and the insert batcher without connecting.
    pub fn connect(config: &ClickhouseConfig) -> Result<Clickhouse, BackendError> {
        if !config.url.starts_with("http://") && !config.url.starts_with("https://") {
            return Err(BackendError::invalid(
                "backend.url",
                format!("{:?}: expected the HTTP interface, http://host:8123", config.url),
            ));
        }
        if config.batch_rows == 0 || config.buffer_rows < config.batch_rows {
            return Err(BackendError::invalid(
                "backend.buffer_rows",
                "batch_rows must be at least 1 and buffer_rows at least batch_rows",
            ));
        }
        if config.concurrent_inserts == 0 {
            return Err(BackendError::invalid(
                "backend.concurrent_inserts",
                "must be at least 1",
            ));
        }
        let mut client = clickhouse::Client::default()
            .with_url(&config.url)
            .with_database(&config.database)
            // 18.16 cannot describe a table the way validation needs.
            .with_validation(false);
        if let Some(user) = &config.user {
            client = client.with_user(user);
        }
        if let Some(password) = &config.password {
            client = client.with_password(password);
        }
        let schema = Arc::new(OnceCell::new());
        let batcher = batcher::Batcher::start(client.clone(), schema.clone(), config);
        Ok(Clickhouse {
            client,
            prefix: config.prefix.clone(),
            timeout: config.timeout,
            schema,
            batcher,
        })
    }

    /// The instance as a backend serving timeseries_basic.
    pub fn backend(self) -> Backend {
        let ch = Arc::new(self);
        Backend {
            kind: ClickhouseConfig::DRIVER.kind,
            keyvalue_basic: None,
            keyvalue_ttl: None,
            keyvalue_scan: None,
            keyvalue_batch: None,
            pubsub_basic: None,
            queue_basic: None,
            timeseries_basic: Some(ch.clone()),
            health: ch,
        }
    }

    /// Writes every waiting append now and stops batching by time (shutdown).
    pub fn close(&self) {
        self.batcher.close();
    }

    /// The client, once the table exists.
    async fn ready(&self) -> Result<&clickhouse::Client, BackendError> {
        ensure_schema(&self.client, &self.schema, self.timeout).await?;
        Ok(&self.client)
    }
}

impl Drop for Clickhouse {
    fn drop(&mut self) {
        self.close();
    }
}

async fn ensure_schema(
    client: &clickhouse::Client,
    schema: &OnceCell<()>,
    timeout: Duration,
) -> Result<(), BackendError> {
    schema
        .get_or_try_init(|| {
            bounded("clickhouse", timeout, async {
                client.query(SCHEMA).execute().await.map_err(error)
            })
        })
        .await
        .map(|_| ())
}

/// Network trouble and timeouts are retryable; a refused query is a bug on one side.
fn error(e: clickhouse::error::Error) -> BackendError {
    use clickhouse::error::Error;
    match e {
        Error::Network(_) | Error::TimedOut => BackendError::Unavailable(format!("clickhouse: {e}")),
        other => BackendError::Internal(format!("clickhouse: {other}")),
    }
}

#[async_trait]
impl HealthCheck for Clickhouse {
    async fn check(&self) -> Result<(), BackendError> {
        bounded("clickhouse", self.timeout, async {
            self.client.query("SELECT 1").fetch_one::<u8>().await.map_err(error)
        })
        .await
        .map(|_| ())
    }

    fn draining(&self) {
        self.close();
    }
}
