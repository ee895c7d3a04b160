//! postgres: keyvalue_* in one table (expiry as a column, filtered on read), queue_basic
//! with `SELECT ... FOR UPDATE SKIP LOCKED`, pubsub_basic on LISTEN/NOTIFY.
//!
//! Requests use a deadpool of connections, which drops broken connections and opens new
//! ones, so the driver recovers by itself when the server comes back. The schema
//! (schema.sql) is created on first use.

mod keyvalue;
mod pubsub;
mod queue;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::Deserialize;
use tokio::sync::OnceCell;

use super::driver::{LiveSubscriptions, bounded, default_timeout};
use super::fanout::Fanout;
use super::{Backend, DriverConfig, DriverInfo, HealthCheck};
use crate::{BackendError, Interface};

/// `backend: { type: postgres, url: postgres://user@127.0.0.1:5432/db, prefix: "app:" }`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user[:password]@host:port/database` (or a `key=value` string).
    pub url: String,
    /// Prepended to every key, queue name and channel.
    #[serde(default)]
    pub prefix: String,
    /// Longest wait for one statement (and for a pooled connection).
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Connections kept open for requests.
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
}

fn default_pool_size() -> usize {
    16
}

impl DriverConfig for PostgresConfig {
    const DRIVER: DriverInfo = DriverInfo {
        kind: "postgres",
        interfaces: &[
            Interface::KeyvalueBasic,
            Interface::KeyvalueTtl,
            Interface::KeyvalueScan,
            Interface::KeyvalueBatch,
            Interface::PubsubBasic,
            Interface::QueueBasic,
        ],
        summary: "PostgreSQL 13 or later: one table, SKIP LOCKED queues, LISTEN/NOTIFY",
    };

    fn shared_server(&self) -> Option<(String, &str)> {
        Some((self.url.to_ascii_lowercase(), &self.prefix))
    }

    async fn connect(&self) -> Result<Backend, BackendError> {
        Ok(Postgres::connect(self)?.backend())
    }
}

pub(crate) struct Postgres {
    pool: Pool,
    /// Every subscription, on one LISTEN connection of its own.
    subscriptions: Fanout<pubsub::Listen>,
    prefix: String,
    timeout: Duration,
    schema: OnceCell<()>,
    live: LiveSubscriptions,
}

/// The NOTIFY payload limit (shorter than 8000 bytes) leaves this much for a message
/// after the 8-byte envelope and base64: 4 * ceil((8 + 5 989) / 3) = 7 996. It was 5 990,
/// whose 8 000 base64 bytes PostgreSQL refuses ("payload string too long"); the test at
/// the bound found it.
pub(crate) const MAX_PUBSUB_PAYLOAD: usize = 5_989;

impl Postgres {
    /// Sets up the pool without connecting: the proxy starts (not ready) while the
    /// server is down.
    pub(crate) fn connect(config: &PostgresConfig) -> Result<Postgres, BackendError> {
        let mut pg_config = tokio_postgres::Config::from_str(&config.url)
            .map_err(|e| BackendError::invalid("backend.url", format!("not a PostgreSQL URL: {e}")))?;
        pg_config.connect_timeout(config.timeout);
        let manager = Manager::from_config(
            pg_config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size.max(1))
            .wait_timeout(Some(config.timeout))
            .create_timeout(Some(config.timeout))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| BackendError::invalid("backend", format!("cannot build the connection pool: {e}")))?;
        Ok(Postgres {
            pool,
            subscriptions: pubsub::fanout(pg_config, config.timeout),
            prefix: config.prefix.clone(),
            timeout: config.timeout,
            schema: OnceCell::new(),
            live: LiveSubscriptions::default(),
        })
    }

    pub(crate) fn backend(self) -> Backend {
        let pg = Arc::new(self);
        Backend {
            kind: PostgresConfig::DRIVER.kind,
            keyvalue_basic: Some(pg.clone()),
            keyvalue_ttl: Some(pg.clone()),
            keyvalue_scan: Some(pg.clone()),
            keyvalue_batch: Some(pg.clone()),
            pubsub_basic: Some(pg.clone()),
            queue_basic: Some(pg.clone()),
            timeseries_basic: None,
            health: pg,
        }
    }

    /// A pooled connection with the schema in place, within the timeout.
    async fn conn(&self) -> Result<deadpool_postgres::Object, BackendError> {
        let conn = bounded("postgres", self.timeout, async {
            self.pool.get().await.map_err(pool_error)
        })
        .await?;
        self.schema
            .get_or_try_init(|| async {
                bounded("postgres", self.timeout, async {
                    // One simple query is one transaction: the lock is held until it
                    // commits. (A session lock released by its last statement let a
                    // second proxy in before the commit, to fail on the catalog's unique
                    // index with "duplicate key value".)
                    conn.batch_execute(&format!(
                        "SELECT pg_advisory_xact_lock(7350); {}",
                        include_str!("schema.sql")
                    ))
                    .await
                    .map_err(error)
                })
                .await
            })
            .await?;
        Ok(conn)
    }

    /// Runs `statement` with `params` and returns its rows, within the timeout.
    async fn query(
        &self,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, BackendError> {
        let conn = self.conn().await?;
        bounded("postgres", self.timeout, async {
            let prepared = conn.prepare_cached(statement).await.map_err(error)?;
            conn.query(&prepared, params).await.map_err(error)
        })
        .await
    }

    /// Like [`Self::query`], returning the number of rows affected.
    async fn execute(
        &self,
        statement: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, BackendError> {
        let conn = self.conn().await?;
        bounded("postgres", self.timeout, async {
            let prepared = conn.prepare_cached(statement).await.map_err(error)?;
            conn.execute(&prepared, params).await.map_err(error)
        })
        .await
    }

    fn prefixed(&self, name: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + name.len());
        out.extend_from_slice(self.prefix.as_bytes());
        out.extend_from_slice(name);
        out
    }
}

/// Connection trouble and server shutdown or overload are retryable; anything else
/// (a failed statement) is a bug on one side.
/// Column `i` of a reply row, or INTERNAL naming it when the reply does not have the
/// type the driver expects (a schema changed under it): a backend's reply is input too,
/// and `Row::get` would panic.
fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a tokio_postgres::Row,
    i: usize,
) -> Result<T, BackendError> {
    row.try_get(i)
        .map_err(|e| BackendError::Internal(format!("postgres: column {i} of the reply: {e}")))
}

fn error(e: tokio_postgres::Error) -> BackendError {
    use tokio_postgres::error::SqlState;
    let transient = e.is_closed()
        || e.code().is_none()
        || e.code().is_some_and(|c| {
            [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
            ]
            .contains(c)
        });
    // The server's own message: `Display` says only "db error".
    let message = match e.as_db_error() {
        Some(db) => format!("postgres: {} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => format!("postgres: {e}"),
    };
    if transient {
        BackendError::Unavailable(message)
    } else {
        BackendError::Internal(message)
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> BackendError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => error(e),
        other => BackendError::Unavailable(format!("postgres: {other}")),
    }
}

#[async_trait]
impl HealthCheck for Postgres {
    async fn check(&self) -> Result<(), BackendError> {
        self.query("SELECT 1", &[]).await.map(|_| ())
    }
}
