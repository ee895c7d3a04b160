//! An out-of-tree plugin: any server speaking the Prism gRPC interfaces, named by
//! `PRISM_ACCEPT_GRPC_ENDPOINT=host:port` (namespace from `PRISM_ACCEPT_GRPC_NAMESPACE`,
//! default `default`). Its interfaces are read from the server (`prism.meta.v1.Meta`).

use async_trait::async_trait;
use prism_proxy::Interface;
use prism_proxy::backends::Backend;
use prism_proxy::client::PrismClient;
use prism_proxy::config::BackendConfig;

use crate::{BackendDecl, Capability, Instance, Provider};

pub struct GrpcEndpoint {
    endpoint: String,
    namespace: String,
    interfaces: Vec<Interface>,
}

impl GrpcEndpoint {
    pub fn from_env() -> Option<GrpcEndpoint> {
        let raw = std::env::var("PRISM_ACCEPT_GRPC_ENDPOINT").ok()?;
        let endpoint = if raw.contains("://") {
            raw
        } else {
            format!("http://{raw}")
        };
        let namespace = std::env::var("PRISM_ACCEPT_GRPC_NAMESPACE").unwrap_or_else(|_| "default".into());
        // Interfaces must be known before tests are listed: ask the server now.
        let interfaces = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?
            .block_on(async {
                let client = PrismClient::connect(&endpoint, &namespace).await?;
                client.describe().await
            })
            .map(|info| info.interfaces)
            .unwrap_or_else(|e| {
                eprintln!(
                    "acceptance: PRISM_ACCEPT_GRPC_ENDPOINT={endpoint}: cannot describe namespace {namespace}: {e}"
                );
                Vec::new()
            });
        Some(GrpcEndpoint {
            endpoint,
            namespace,
            interfaces,
        })
    }
}

#[async_trait]
impl BackendDecl for GrpcEndpoint {
    fn name(&self) -> &'static str {
        "grpc_endpoint"
    }

    fn interfaces(&self) -> Vec<Interface> {
        self.interfaces.clone()
    }

    fn capabilities(&self) -> Vec<Capability> {
        // Nothing optional is assumed of a foreign server.
        Vec::new()
    }

    async fn provision(&self) -> anyhow::Result<Instance> {
        Ok(Instance {
            provider: Provider::External,
            url: Some(self.endpoint.clone()),
            addr: None,
            guard: None,
        })
    }

    async fn connect(&self, _: &Instance) -> anyhow::Result<Backend> {
        let client = PrismClient::connect(&self.endpoint, &self.namespace).await?;
        Ok(client.backend(&self.interfaces))
    }

    fn in_registry(&self) -> bool {
        // It describes itself through prism.meta.v1.Meta; there is no YAML to compare.
        false
    }

    fn has_proxy_driver(&self) -> bool {
        false
    }

    fn proxy_backend(&self, _: &Instance) -> Option<BackendConfig> {
        None
    }
}
