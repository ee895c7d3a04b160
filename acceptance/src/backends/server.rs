//! The declaration every server backend shares: provisioned from its [`ServerSpec`],
//! reached through the proxy's own driver. A server backend is one value of this type.

use std::sync::LazyLock;

use anyhow::Context;
use async_trait::async_trait;
use prism_proxy::Interface;
use prism_proxy::backends::{Backend, DriverInfo};
use prism_proxy::config::BackendConfig;

use crate::provision::ServerSpec;
use crate::{BackendDecl, Capability, Instance};

pub struct ServerBackend {
    pub spec: &'static ServerSpec,
    pub capabilities: &'static [Capability],
    /// The driver config for a server at `url`, with everything under `prefix`.
    pub config: fn(url: &str, prefix: &str) -> BackendConfig,
}

/// Names this run's data, so runs against a long-lived external server never meet.
static RUN_PREFIX: LazyLock<String> = LazyLock::new(|| {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("accept-{:x}{nanos:x}-", std::process::id())
});

impl ServerBackend {
    /// The proxy driver this backend is reached through: its kind names the backend and
    /// its interface list is the claim.
    pub fn driver(&self) -> &'static DriverInfo {
        (self.config)("", "").driver()
    }

    fn config_for(&self, instance: &Instance) -> anyhow::Result<BackendConfig> {
        let url = instance.url.as_deref().context("the instance has no URL")?;
        Ok((self.config)(url, &RUN_PREFIX))
    }
}

#[async_trait]
impl BackendDecl for ServerBackend {
    fn name(&self) -> &'static str {
        self.driver().kind
    }

    fn interfaces(&self) -> Vec<Interface> {
        self.driver().interfaces.to_vec()
    }

    fn capabilities(&self) -> Vec<Capability> {
        self.capabilities.to_vec()
    }

    async fn provision(&self) -> anyhow::Result<Instance> {
        self.spec.provision().await
    }

    async fn connect(&self, instance: &Instance) -> anyhow::Result<Backend> {
        let config = self.config_for(instance)?;
        config
            .connect()
            .await
            .with_context(|| format!("connecting to {}", instance.url.as_deref().unwrap_or("?")))
    }

    fn proxy_backend(&self, instance: &Instance) -> Option<BackendConfig> {
        self.config_for(instance).ok()
    }

    fn server(&self) -> Option<&'static ServerSpec> {
        Some(self.spec)
    }

    async fn server_version(&self, instance: &Instance) -> anyhow::Result<Option<String>> {
        let url = instance.url.clone().context("the instance has no URL")?;
        let asked = tokio::time::timeout(std::time::Duration::from_secs(10), (self.spec.version)(url)).await;
        Ok(Some(asked.context("no answer within 10 s")??))
    }
}

#[cfg(test)]
mod tests {
    use crate::backends::{CLICKHOUSE, NATS, POSTGRES, REDIS};

    /// The server a backend provisions is the one its driver is named after.
    #[test]
    fn each_server_spec_is_for_its_driver() {
        for backend in [&REDIS, &POSTGRES, &NATS, &CLICKHOUSE] {
            assert_eq!(backend.spec.backend, backend.driver().kind);
        }
    }
}
