//! An out-of-tree plugin: any server speaking the Prism gRPC interfaces. Its interfaces
//! are read from the server (`prism.meta.v1.Meta/DescribeNamespace`); its capabilities
//! are what it is told to claim (a registry file like `acceptance/registry/*.yaml`, or a
//! list). A server that cannot describe itself, or whose description disagrees with its
//! registry file, fails the run in `<name>::describes_itself` rather than passing it
//! with no tests.
//!
//! From the environment (`cargo test -p acceptance`): `PRISM_ACCEPT_GRPC_ENDPOINT=host:port`,
//! `PRISM_ACCEPT_GRPC_NAMESPACE` (default `default`), `PRISM_ACCEPT_GRPC_REGISTRY=FILE`,
//! `PRISM_ACCEPT_GRPC_CAPABILITIES=a,b`; `prism-conformance --endpoint` takes the same.

use std::path::PathBuf;

use async_trait::async_trait;
use prism_proxy::Interface;
use prism_proxy::backends::Backend;
use prism_proxy::client::PrismClient;
use prism_proxy::config::BackendConfig;

use crate::registry::{self, RegistryEntry};
use crate::{BackendDecl, Capability, Instance, Provider};

/// The name of an endpoint in test names when nothing names it.
pub const DEFAULT_NAME: &str = "grpc_endpoint";

/// What the harness is told about an endpoint.
#[derive(Debug, Clone, Default)]
pub struct EndpointOptions {
    /// `host:port` or a URL (`http://host:port`).
    pub endpoint: String,
    pub namespace: String,
    /// Its name in test names and the matrix; default: the registry file's `backend`,
    /// else `grpc_endpoint`.
    pub name: Option<String>,
    /// The claim to check the server's description against, and its capabilities.
    pub registry: Option<PathBuf>,
    /// Capabilities claimed besides the registry file's.
    pub capabilities: Vec<Capability>,
}

pub struct GrpcEndpoint {
    name: &'static str,
    endpoint: String,
    namespace: String,
    interfaces: Vec<Interface>,
    capabilities: Vec<Capability>,
    /// The server's own description, or why there is none or it does not hold.
    description: Result<serde_json::Value, String>,
}

impl GrpcEndpoint {
    /// The endpoint `PRISM_ACCEPT_GRPC_*` name, if any. A malformed variable becomes a
    /// failing `describes_itself`, like a server that cannot describe itself.
    pub fn from_env() -> Option<GrpcEndpoint> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let endpoint = var("PRISM_ACCEPT_GRPC_ENDPOINT")?;
        let mut options = EndpointOptions {
            endpoint,
            namespace: var("PRISM_ACCEPT_GRPC_NAMESPACE").unwrap_or_else(|| "default".into()),
            registry: var("PRISM_ACCEPT_GRPC_REGISTRY").map(PathBuf::from),
            ..EndpointOptions::default()
        };
        let mut problem = None;
        for name in var("PRISM_ACCEPT_GRPC_CAPABILITIES").unwrap_or_default().split(',') {
            match Capability::parse(name.trim()) {
                Ok(capability) => options.capabilities.push(capability),
                Err(e) if !name.trim().is_empty() => problem = Some(format!("PRISM_ACCEPT_GRPC_CAPABILITIES: {e}")),
                Err(_) => {}
            }
        }
        let mut endpoint = GrpcEndpoint::describe(options);
        if let Some(problem) = problem {
            endpoint.description = Err(problem);
        }
        Some(endpoint)
    }

    /// Asks the server now (interfaces must be known before tests are listed) and checks
    /// its answer against the registry file, when there is one.
    pub fn describe(options: EndpointOptions) -> GrpcEndpoint {
        let endpoint = if options.endpoint.contains("://") {
            options.endpoint.clone()
        } else {
            format!("http://{}", options.endpoint)
        };
        let entry = options.registry.as_ref().map(|path| registry::load_file(path));
        let name = options
            .name
            .clone()
            .or_else(|| entry.as_ref().and_then(|e| e.as_ref().ok()).map(|e| e.backend.clone()))
            .unwrap_or_else(|| DEFAULT_NAME.to_string());
        let mut capabilities = options.capabilities.clone();
        if let Some(Ok(entry)) = &entry {
            capabilities.extend(entry.capabilities.iter().copied());
        }
        capabilities.sort();
        capabilities.dedup();
        let described = ask(&endpoint, &options.namespace);
        let mut this = GrpcEndpoint {
            // One per run; test names want a 'static name.
            name: Box::leak(name.into_boxed_str()),
            endpoint: endpoint.clone(),
            namespace: options.namespace.clone(),
            interfaces: described
                .as_ref()
                .map(|info| info.interfaces.clone())
                .unwrap_or_default(),
            capabilities,
            description: Err(String::new()),
        };
        this.description = match (described, entry) {
            (Err(e), _) => Err(format!(
                "{endpoint}: cannot describe namespace {:?} (prism.meta.v1.Meta/DescribeNamespace): {e}",
                options.namespace
            )),
            (Ok(_), Some(Err(e))) => Err(format!("{e:#}")),
            (Ok(info), _) if info.interfaces.is_empty() => Err(format!(
                "{endpoint}: namespace {:?} describes itself as serving no interface this harness knows (backend {:?})",
                options.namespace, info.backend
            )),
            (Ok(info), entry) => {
                // What it serves is checked; `--name` may call it something else, and
                // its capabilities are the file's and the list's.
                let differences = match entry {
                    Some(Ok(entry)) => registry::differences_from(
                        &RegistryEntry {
                            backend: this.name.to_string(),
                            capabilities: this.capabilities.clone(),
                            ..entry
                        },
                        &this,
                        "the server",
                    ),
                    _ => Vec::new(),
                };
                if differences.is_empty() {
                    Ok(serde_json::json!({
                        "namespace": info.namespace,
                        "backend": info.backend,
                        "interfaces": info.interfaces,
                    }))
                } else {
                    Err(format!(
                        "{} disagrees with what {endpoint} describes:\n  {}",
                        options
                            .registry
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default(),
                        differences.join("\n  ")
                    ))
                }
            }
        };
        this
    }
}

fn ask(endpoint: &str, namespace: &str) -> anyhow::Result<prism_proxy::client::NamespaceInfo> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let client = PrismClient::connect(endpoint, namespace).await?;
        let described = tokio::time::timeout(std::time::Duration::from_secs(10), client.describe()).await;
        Ok(described.map_err(|_| anyhow::anyhow!("no answer within 10 s"))??)
    })
}

#[async_trait]
impl BackendDecl for GrpcEndpoint {
    fn name(&self) -> &'static str {
        self.name
    }

    fn interfaces(&self) -> Vec<Interface> {
        self.interfaces.clone()
    }

    fn capabilities(&self) -> Vec<Capability> {
        // Only what it was told to claim: nothing optional is assumed of a foreign server.
        self.capabilities.clone()
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
        // It describes itself; a registry file, when given, is checked in describes_itself.
        false
    }

    fn has_proxy_driver(&self) -> bool {
        false
    }

    fn proxy_backend(&self, _: &Instance) -> Option<BackendConfig> {
        None
    }

    fn self_description(&self) -> Option<Result<serde_json::Value, String>> {
        Some(self.description.clone())
    }
}
