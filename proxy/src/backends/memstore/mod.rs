//! memstore: the in-process backend, serving every interface from memory.
//!
//! Time comes from `tokio::time`, so tests can pause and advance it (TTL, visibility
//! timeouts) without sleeping.

mod keyvalue;
mod pubsub;
mod queue;
mod timeseries;

use std::sync::Arc;

use async_trait::async_trait;
pub use keyvalue::KvStore;
pub use pubsub::PubSubHub;
pub use queue::Queues;
use serde::Deserialize;
pub use timeseries::SeriesStore;

use super::{Backend, DriverConfig, DriverInfo, HealthCheck};
use crate::{BackendError, Interface};

/// `backend: { type: memstore }`: no settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemstoreConfig {}

impl DriverConfig for MemstoreConfig {
    const DRIVER: DriverInfo = DriverInfo {
        kind: "memstore",
        interfaces: &Interface::ALL,
        summary: "in-process; data lives as long as the proxy",
    };

    async fn connect(&self) -> Result<Backend, BackendError> {
        Ok(MemStore::new().backend())
    }
}

/// All memstore parts for one namespace.
#[derive(Clone, Default)]
pub struct MemStore {
    /// keyvalue_basic, _ttl, _scan and _batch.
    pub kv: Arc<KvStore>,
    /// pubsub_basic.
    pub pubsub: Arc<PubSubHub>,
    /// queue_basic.
    pub queues: Arc<Queues>,
    /// timeseries_basic.
    pub series: Arc<SeriesStore>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// The store as a backend serving every interface.
    pub fn backend(&self) -> Backend {
        Backend {
            kind: MemstoreConfig::DRIVER.kind,
            keyvalue_basic: Some(self.kv.clone()),
            keyvalue_ttl: Some(self.kv.clone()),
            keyvalue_scan: Some(self.kv.clone()),
            keyvalue_batch: Some(self.kv.clone()),
            pubsub_basic: Some(self.pubsub.clone()),
            queue_basic: Some(self.queues.clone()),
            timeseries_basic: Some(self.series.clone()),
            health: Arc::new(AlwaysHealthy),
        }
    }
}

struct AlwaysHealthy;

#[async_trait]
impl HealthCheck for AlwaysHealthy {
    async fn check(&self) -> Result<(), BackendError> {
        Ok(())
    }
}
