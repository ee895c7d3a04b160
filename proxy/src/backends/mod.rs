//! Backend drivers and the handle the server routes to.
//!
//! A [`Backend`] is the set of interface implementations one driver instance offers; a
//! namespace serves a subset of them.
//!
//! Every driver has the same shape (see `README.md`, "Adding a backend driver"): a folder
//! here whose `mod.rs` has a config type (`backend: { type: <kind>, ... }`) implementing
//! [`DriverConfig`]: its [`DriverInfo`] (the `type` name and the interfaces it serves,
//! stated once; config validation, the driver and the acceptance harness read them) and
//! `connect`, which builds the [`Backend`]. A `mod` line and one entry in the `drivers!`
//! list below (both behind its Cargo feature) register the driver.
//!
//! Functions here spell their results `Result<T, BackendError>` rather than the
//! `BackendResult<T>` alias the interface traits use: cargo-mutants (`ci/mutants.sh`)
//! cannot see through an alias, and with it wrote mutants that do not compile instead
//! of `Ok(true)`, `Ok(vec![])` and the like.

#[cfg(any(feature = "redis", feature = "postgres", feature = "nats", feature = "clickhouse"))]
mod driver;
#[cfg(any(feature = "redis", feature = "postgres"))]
mod fanout;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::interfaces::{
    Interface, KeyValueBasic, KeyValueBatch, KeyValueScan, KeyValueTtl, PubSubBasic, QueueBasic, TimeSeriesBasic,
};
use crate::{BackendError, BackendResult};

/// What a driver states about itself, once, in its module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverInfo {
    /// The config `type` name, snake_case (`redis`); also its name in the acceptance
    /// matrix and registry.
    pub kind: &'static str,
    /// The interfaces every instance serves, in canonical order.
    pub interfaces: &'static [Interface],
    /// One line for humans: which server versions and how.
    pub summary: &'static str,
}

/// A driver's config (`backend: { type: <kind>, ... }`): the type that knows its driver.
pub trait DriverConfig {
    /// The driver this config is for.
    const DRIVER: DriverInfo;

    /// Creates the driver instance. Server drivers connect lazily, so the proxy starts
    /// (not ready) while their server is down.
    fn connect(&self) -> impl Future<Output = BackendResult<Backend>> + Send;

    /// For a driver whose data lives on a server other namespaces may share: which server
    /// (its URL, and database where the driver has one) and the prefix this namespace
    /// stores under. Config validation refuses two namespaces on one server whose prefixes
    /// could name the same stored key.
    fn shared_server(&self) -> Option<(String, &str)> {
        None
    }

    /// What is wrong with these settings, as (field under `backend.`, what is expected);
    /// config validation reports them with every other problem.
    fn problems(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// Whether a backend can serve requests now (`/readyz`), and its part in a drain.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Ok when the backend answers now.
    async fn check(&self) -> Result<(), BackendError>;

    /// The proxy has started draining: write out anything buffered now rather than on a
    /// timer, so in-flight requests finish within the drain.
    fn draining(&self) {}
}

/// One driver instance and the interfaces it implements.
#[derive(Clone)]
#[allow(missing_docs)] // one field per interface, named after it
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
    /// `/readyz` and drain.
    pub health: Arc<dyn HealthCheck>,
}

impl Backend {
    /// The interfaces this backend implements, in canonical order.
    pub fn interfaces(&self) -> Vec<Interface> {
        Interface::ALL.into_iter().filter(|i| self.implements(*i)).collect()
    }

    /// Whether it has a handle for `interface`.
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
        fn keep_if<T: ?Sized>(handle: &mut Option<Arc<T>>, keep: bool) {
            if !keep {
                *handle = None;
            }
        }
        let keeps = |i| keep.contains(&i);
        keep_if(&mut self.keyvalue_basic, keeps(Interface::KeyvalueBasic));
        keep_if(&mut self.keyvalue_ttl, keeps(Interface::KeyvalueTtl));
        keep_if(&mut self.keyvalue_scan, keeps(Interface::KeyvalueScan));
        keep_if(&mut self.keyvalue_batch, keeps(Interface::KeyvalueBatch));
        keep_if(&mut self.pubsub_basic, keeps(Interface::PubsubBasic));
        keep_if(&mut self.queue_basic, keeps(Interface::QueueBasic));
        keep_if(&mut self.timeseries_basic, keeps(Interface::TimeseriesBasic));
        self
    }
}

// One module per driver, behind its feature. (Declared here, not by the macro below, so
// tools that follow `mod` items, such as cargo-mutants, find the drivers.)
#[cfg(feature = "clickhouse")]
pub mod clickhouse;
pub mod memstore;
#[cfg(feature = "nats")]
pub mod nats;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

/// The list of drivers compiled in: `Variant(ConfigType)` per driver, behind its feature.
/// It makes [`BackendConfig`] (the `backend:` of a namespace) and [`drivers`].
macro_rules! drivers {
    ($($(#[cfg($cfg:meta)])? $variant:ident($config:ty),)+) => {

        /// A namespace's `backend:`: `type` picks the driver, the other keys are its
        /// config. Unknown keys are errors.
        #[derive(Debug, Clone, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
        #[allow(missing_docs)] // each variant is its driver's config, documented there
        pub enum BackendConfig {
            $($(#[cfg($cfg)])? $variant($config),)+
        }

        /// Every driver compiled into this build.
        #[allow(clippy::vec_init_then_push)] // each push is behind its driver's feature
        pub fn drivers() -> Vec<&'static DriverInfo> {
            let mut all = Vec::new();
            $($(#[cfg($cfg)])? all.push(&<$config as DriverConfig>::DRIVER);)+
            all
        }

        impl BackendConfig {
            /// The driver this config is for.
            pub fn driver(&self) -> &'static DriverInfo {
                match self {
                    $($(#[cfg($cfg)])? BackendConfig::$variant(_) => &<$config as DriverConfig>::DRIVER,)+
                }
            }

            /// The server and prefix, for drivers whose server namespaces may share.
            pub fn shared_server(&self) -> Option<(String, &str)> {
                match self {
                    $($(#[cfg($cfg)])? BackendConfig::$variant(config) => config.shared_server(),)+
                }
            }

            /// What is wrong with the driver's settings, as (field, what is expected).
            pub fn problems(&self) -> Vec<(&'static str, String)> {
                match self {
                    $($(#[cfg($cfg)])? BackendConfig::$variant(config) => config.problems(),)+
                }
            }

            /// Creates the driver instance.
            pub async fn connect(&self) -> Result<Backend, BackendError> {
                match self {
                    $($(#[cfg($cfg)])? BackendConfig::$variant(config) => config.connect().await,)+
                }
            }
        }
    };
}

drivers! {
    Memstore(memstore::MemstoreConfig),
    #[cfg(feature = "redis")]
    Redis(redis::RedisConfig),
    #[cfg(feature = "postgres")]
    Postgres(postgres::PostgresConfig),
    #[cfg(feature = "nats")]
    Nats(nats::NatsConfig),
    #[cfg(feature = "clickhouse")]
    Clickhouse(clickhouse::ClickhouseConfig),
}

impl BackendConfig {
    /// The config `type` name (`memstore`, `redis`, ...).
    pub fn kind(&self) -> &'static str {
        self.driver().kind
    }

    /// What this backend type implements (without connecting).
    pub fn interfaces(&self) -> Vec<Interface> {
        self.driver().interfaces.to_vec()
    }

    /// The in-process store.
    pub fn memstore() -> BackendConfig {
        BackendConfig::Memstore(memstore::MemstoreConfig {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each driver's `kind` is the `type` its config is read under, and names are unique.
    #[test]
    fn every_driver_is_configured_by_its_kind() {
        let mut seen = std::collections::BTreeSet::new();
        for driver in drivers() {
            assert!(seen.insert(driver.kind), "{} twice", driver.kind);
            assert!(!driver.interfaces.is_empty(), "{} serves nothing", driver.kind);
            let mut sorted = driver.interfaces.to_vec();
            sorted.sort();
            assert_eq!(
                sorted, driver.interfaces,
                "{}: interfaces out of canonical order",
                driver.kind
            );
            // Deserializing `type: <kind>` picks this driver (other keys may be required,
            // so an error about a missing field is also an answer that the type is known).
            let yaml = format!("type: {}\n", driver.kind);
            match serde_yaml::from_str::<BackendConfig>(&yaml) {
                Ok(config) => assert_eq!(config.kind(), driver.kind),
                Err(e) => assert!(e.to_string().contains("missing field"), "{}: {e}", driver.kind),
            }
        }
        assert_eq!(seen.len(), drivers().len());
    }
}
