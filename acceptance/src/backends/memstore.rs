//! memstore: in-process, implements everything. The shortest possible declaration.

use async_trait::async_trait;
use prism_proxy::Interface;
use prism_proxy::backends::memstore::{MemStore, MemstoreConfig};
use prism_proxy::backends::{Backend, DriverConfig};
use prism_proxy::config::BackendConfig;

use crate::{BackendDecl, Capability, Instance, Provider};

pub struct Memstore;

#[async_trait]
impl BackendDecl for Memstore {
    fn name(&self) -> &'static str {
        MemstoreConfig::DRIVER.kind
    }

    fn interfaces(&self) -> Vec<Interface> {
        MemstoreConfig::DRIVER.interfaces.to_vec()
    }

    fn capabilities(&self) -> Vec<Capability> {
        vec![
            Capability::PubsubDeliveredCount,
            Capability::QueueDeliveryCount,
            Capability::TtlRemaining,
            Capability::TimeseriesColumns,
        ]
    }

    async fn provision(&self) -> anyhow::Result<Instance> {
        Ok(Instance {
            provider: Provider::InProcess,
            url: None,
            addr: None,
            guard: None,
        })
    }

    async fn connect(&self, _: &Instance) -> anyhow::Result<Backend> {
        // A fresh store per connection: each test starts empty.
        Ok(MemStore::new().backend())
    }

    fn proxy_backend(&self, _: &Instance) -> Option<BackendConfig> {
        Some(BackendConfig::memstore())
    }

    async fn server_version(&self, _: &Instance) -> anyhow::Result<Option<String>> {
        // The proxy crate shares the workspace version.
        Ok(Some(format!(
            "prism-proxy {} memstore (in-process)",
            env!("CARGO_PKG_VERSION")
        )))
    }
}
