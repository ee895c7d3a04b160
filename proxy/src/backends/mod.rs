//! Backend drivers and the handle the server routes to.
//!
//! A [`Backend`] is the set of interface implementations one driver instance offers; a
//! namespace serves a subset of them.

pub mod clickhouse;
pub mod driver;
pub mod memstore;
pub mod nats;
pub mod postgres;
pub mod redis;

use std::sync::Arc;

use async_trait::async_trait;

use crate::BackendResult;
use crate::interfaces::{
    Interface, KeyValueBasic, KeyValueBatch, KeyValueScan, KeyValueTtl, PubSubBasic, QueueBasic, TimeSeriesBasic,
};

/// Whether a backend can serve requests now (`/readyz`), and its part in a drain.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    async fn check(&self) -> BackendResult<()>;

    /// The proxy has started draining: write out anything buffered now rather than on a
    /// timer, so in-flight requests finish within the drain.
    fn draining(&self) {}
}

/// One driver instance and the interfaces it implements.
#[derive(Clone)]
pub struct Backend {
    /// The backend type, as written in the config (`memstore`, ...).
    pub kind: &'static str,
    pub keyvalue_basic: Option<Arc<dyn KeyValueBasic>>,
    pub keyvalue_ttl: Option<Arc<dyn KeyValueTtl>>,
    pub keyvalue_scan: Option<Arc<dyn KeyValueScan>>,
    pub keyvalue_batch: Option<Arc<dyn KeyValueBatch>>,
    pub pubsub_basic: Option<Arc<dyn PubSubBasic>>,
    pub queue_basic: Option<Arc<dyn QueueBasic>>,
    pub timeseries_basic: Option<Arc<dyn TimeSeriesBasic>>,
    pub health: Arc<dyn HealthCheck>,
}

impl Backend {
    /// The interfaces this backend implements, in canonical order.
    pub fn interfaces(&self) -> Vec<Interface> {
        Interface::ALL.into_iter().filter(|i| self.implements(*i)).collect()
    }

    pub fn implements(&self, interface: Interface) -> bool {
        match interface {
            Interface::KeyvalueBasic => self.keyvalue_basic.is_some(),
            Interface::KeyvalueTtl => self.keyvalue_ttl.is_some(),
            Interface::KeyvalueScan => self.keyvalue_scan.is_some(),
            Interface::KeyvalueBatch => self.keyvalue_batch.is_some(),
            Interface::PubsubBasic => self.pubsub_basic.is_some(),
            Interface::QueueBasic => self.queue_basic.is_some(),
            Interface::TimeseriesBasic => self.timeseries_basic.is_some(),
        }
    }

    /// Keeps only the listed interfaces (a namespace may serve a subset).
    pub fn restrict(mut self, keep: &[Interface]) -> Backend {
        let keeps = |i| keep.contains(&i);
        if !keeps(Interface::KeyvalueBasic) {
            self.keyvalue_basic = None;
        }
        if !keeps(Interface::KeyvalueTtl) {
            self.keyvalue_ttl = None;
        }
        if !keeps(Interface::KeyvalueScan) {
            self.keyvalue_scan = None;
        }
        if !keeps(Interface::KeyvalueBatch) {
            self.keyvalue_batch = None;
        }
        if !keeps(Interface::PubsubBasic) {
            self.pubsub_basic = None;
        }
        if !keeps(Interface::QueueBasic) {
            self.queue_basic = None;
        }
        if !keeps(Interface::TimeseriesBasic) {
            self.timeseries_basic = None;
        }
        self
    }
}
