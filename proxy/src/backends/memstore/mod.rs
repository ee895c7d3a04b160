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
pub use timeseries::SeriesStore;

use super::{Backend, HealthCheck};
use crate::BackendResult;

/// All memstore parts for one namespace.
#[derive(Clone, Default)]
pub struct MemStore {
    pub kv: Arc<KvStore>,
    pub pubsub: Arc<PubSubHub>,
    pub queues: Arc<Queues>,
    pub series: Arc<SeriesStore>,
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }

    pub fn backend(&self) -> Backend {
        Backend {
            kind: "memstore",
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
    async fn check(&self) -> BackendResult<()> {
        Ok(())
    }
}

/// Milliseconds since the Unix epoch by the wall clock.
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
