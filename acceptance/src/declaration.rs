//! What a backend plugin declares to the harness.

use async_trait::async_trait;
use prism_proxy::Interface;
use prism_proxy::backends::Backend;
use prism_proxy::config::BackendConfig;

use crate::Capability;

/// How an instance of a backend was obtained, as shown in the compliance matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Runs inside the test process.
    InProcess,
    /// A container started through testcontainers.
    Container,
    /// A server process started from a binary on PATH.
    Process,
    /// Given by the environment (`PRISM_ACCEPT_<BACKEND>_URL`, `PRISM_ACCEPT_GRPC_ENDPOINT`).
    External,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::InProcess => "in-process",
            Provider::Container => "container",
            Provider::Process => "process",
            Provider::External => "external",
        }
    }
}

/// A provisioned backend instance, kept for the whole run and torn down at its end.
pub struct Instance {
    pub provider: Provider,
    /// Where to reach it (none for in-process backends).
    pub url: Option<String>,
    /// The server's address, when the harness started it.
    pub addr: Option<std::net::SocketAddr>,
    /// Whatever must live as long as the instance (a container, a child process).
    pub guard: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// A backend as the harness sees it. A plugin author implements this (about 50 lines)
/// and adds one line to [`crate::backends::all`].
#[async_trait]
pub trait BackendDecl: Send + Sync {
    /// snake_case name, used in test names and the registry file name.
    fn name(&self) -> &'static str;
    /// Interfaces claimed; only these get tests.
    fn interfaces(&self) -> Vec<Interface>;
    /// Optional behaviours claimed.
    fn capabilities(&self) -> Vec<Capability>;
    /// Obtains an instance: external URL, container, process or in-process.
    async fn provision(&self) -> anyhow::Result<Instance>;
    /// A fresh connection to `instance`.
    async fn connect(&self, instance: &Instance) -> anyhow::Result<Backend>;
    /// Whether `acceptance/registry/<name>.yaml` states this backend's claim (checked by
    /// `<name>::registry_matches_code`). Out-of-tree servers declare themselves instead.
    fn in_registry(&self) -> bool {
        true
    }
    /// Whether the reference proxy has a driver for this backend (then the suites also
    /// run as `proxy::<backend>::...`).
    fn has_proxy_driver(&self) -> bool {
        true
    }
    /// How the reference proxy reaches `instance`; `None` when it has no driver.
    fn proxy_backend(&self, instance: &Instance) -> Option<BackendConfig>;
    /// The server the harness starts for this backend, when it starts one: its
    /// provisioning self-tests (`provisioning::<name>::<process|container>`) run too.
    fn server(&self) -> Option<&'static crate::provision::ServerSpec> {
        None
    }
    /// The server's own version string, for the report; `None` when there is no server
    /// to ask.
    async fn server_version(&self, _instance: &Instance) -> anyhow::Result<Option<String>> {
        Ok(None)
    }
    /// For a target that describes itself over the wire (an out-of-tree endpoint): its
    /// description, or why it could not be had or does not hold. Then a trial
    /// `<name>::describes_itself` reports it, so a target that cannot say what it serves
    /// fails the run instead of passing it with no tests.
    fn self_description(&self) -> Option<Result<serde_json::Value, String>> {
        None
    }
}
