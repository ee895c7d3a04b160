//! The Docker driver: the Docker Engine API through `bollard`, with the API version
//! negotiated (dockerd 20.10 speaks 1.41 at most, older than bollard's default).
//! Everything it creates is named `<project>-*` and labelled, so `status`, `down` and the
//! port-conflict check find it again.
//!
//! - [`up`]: images, network, volumes, then each service in dependency order, waiting
//!   until it is ready ([`ready`]); unchanged services are left alone;
//! - [`inspect`]: `status`, `logs` and `down`.

pub mod endpoint;
pub mod inspect;
pub mod ready;
mod registry;
pub mod up;
pub mod volumes;

use std::collections::HashMap;

use bollard::Docker;

pub use endpoint::Endpoint;
pub use inspect::{ServiceStatus, State};
pub use up::{PullPolicy, UpOptions, UpReport};
pub use volumes::{VersionChange, VolumeRecord, VolumeRecords};

/// The project a container, volume or network belongs to.
pub const LABEL_PROJECT: &str = "dev.prism.devstack.project";
/// The stack service a container runs.
pub const LABEL_SERVICE: &str = "dev.prism.devstack.service";
/// A hash of everything the container was created from; a different hash means recreate.
pub const LABEL_CONFIG: &str = "dev.prism.devstack.config-hash";
/// The host ports the container listens on (comma-separated), for conflict messages.
pub const LABEL_PORTS: &str = "dev.prism.devstack.ports";

/// Progress lines for people (`up` prints them on stderr).
pub type Progress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// The failure of one service, with what the developer needs to act on it.
#[derive(Debug)]
pub struct ServiceFailure {
    pub service: String,
    pub container: String,
    /// What went wrong ("exited with code 3", "not healthy after 60s: ...").
    pub reason: String,
    /// The last lines it logged.
    pub log_tail: Vec<String>,
    /// Services that did come up before it.
    pub came_up: Vec<String>,
    /// Services not started because of it.
    pub not_started: Vec<String>,
}

impl std::fmt::Display for ServiceFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "service {} ({}) {}", self.service, self.container, self.reason)?;
        if self.log_tail.is_empty() {
            writeln!(f, "  (it logged nothing)")?;
        } else {
            writeln!(f, "  last {} log lines of {}:", self.log_tail.len(), self.container)?;
            for line in &self.log_tail {
                writeln!(f, "  | {line}")?;
            }
        }
        let list = |v: &[String]| if v.is_empty() { "none".to_string() } else { v.join(", ") };
        writeln!(f, "  came up: {}", list(&self.came_up))?;
        write!(f, "  not started: {}", list(&self.not_started))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(
        "cannot reach the Docker engine at {endpoint} ({source}); is it running, and may this user use its socket? (DOCKER_HOST or DOCKER_CONTEXT selects another engine)"
    )]
    Unreachable {
        endpoint: String,
        source: bollard::errors::Error,
    },
    #[error(transparent)]
    Endpoint(#[from] endpoint::EndpointError),
    #[error("Docker engine: {action}: {source}")]
    Docker {
        action: String,
        source: bollard::errors::Error,
    },
    #[error("image {image} (service {service}) is not present, and --pull never forbids pulling it")]
    ImageMissing { service: String, image: String },
    #[error(
        "{}; `devstack down --reset` deletes the old data and starts fresh, or, to keep it, follow upstream's upgrade notes for that version and run `devstack up --upgrade`",
        .0.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; ")
    )]
    OlderVolumes(Vec<VersionChange>),
    #[error("pulling image {image} (service {service}) failed: {message}")]
    Pull {
        service: String,
        image: String,
        message: String,
    },
    #[error("host port {port} (service {service}) is in use{holder}")]
    PortInUse { port: u16, service: String, holder: String },
    #[error("{0}")]
    ServiceFailed(Box<ServiceFailure>),
    #[error("stack: {0}")]
    Stack(#[from] crate::stack::StackError),
    #[error("writing the stack's files: {0}")]
    Files(#[from] crate::state::StateError),
    #[error("no service {service:?} in the stack (known: {known})")]
    UnknownService { service: String, known: String },
    #[error(
        "no container {container}: the stack is not up, or not this part of it; `devstack status` shows what runs, `devstack up` starts it"
    )]
    NotCreated { container: String },
}

impl EngineError {
    fn docker(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> EngineError {
        let action = action.into();
        move |source| EngineError::Docker { action, source }
    }
}

/// Whether a bollard error is the engine's 404.
fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }
    )
}

/// What `doctor` reports about the engine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EngineInfo {
    pub version: String,
    pub api_version: String,
    /// The API version this client talks, after negotiation.
    pub negotiated: String,
    pub memory_bytes: i64,
    pub cpus: i64,
    /// The engine's mirrors of Docker Hub (`registry-mirrors`), which pulls of Hub images use.
    pub mirrors: Vec<String>,
}

/// A connection to the Docker engine.
#[derive(Clone)]
pub struct Engine {
    pub(crate) docker: Docker,
    /// For readiness probes from the host.
    pub(crate) http: reqwest::Client,
    endpoint: Endpoint,
}

impl Engine {
    /// Connects with the usual defaults (`DOCKER_HOST`, else the local socket) and
    /// negotiates the API version down to what the engine speaks.
    pub async fn connect() -> Result<Engine, EngineError> {
        let endpoint = Endpoint::from_env()?;
        let unreachable = |source| EngineError::Unreachable {
            endpoint: endpoint.to_string(),
            source,
        };
        let docker = Docker::connect_with_host(&endpoint.host).map_err(unreachable)?;
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap_or_default();
        Ok(Engine { docker, http, endpoint })
    }

    /// The engine this talks to, and why that one.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub async fn info(&self) -> Result<EngineInfo, EngineError> {
        let version = self.docker.version().await.map_err(EngineError::docker("version"))?;
        let info = self.docker.info().await.map_err(EngineError::docker("info"))?;
        let negotiated = self.docker.client_version();
        Ok(EngineInfo {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            negotiated: format!("{}.{}", negotiated.major_version, negotiated.minor_version),
            memory_bytes: info.mem_total.unwrap_or(0),
            cpus: info.ncpu.unwrap_or(0),
            mirrors: info.registry_config.and_then(|r| r.mirrors).unwrap_or_default(),
        })
    }

    /// Whether `image` is present locally.
    pub async fn has_image(&self, image: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(EngineError::docker(format!("inspect image {image}"))(e)),
        }
    }

    /// Removes `image` (and its untagged layers); absent is fine.
    pub async fn remove_image(&self, image: &str) -> Result<(), EngineError> {
        let options = bollard::query_parameters::RemoveImageOptionsBuilder::default()
            .force(true)
            .build();
        match self.docker.remove_image(image, Some(options), None).await {
            Err(e) if !not_found(&e) => Err(EngineError::docker(format!("remove image {image}"))(e)),
            _ => Ok(()),
        }
    }

    /// Which devstack containers (of any project) listen on which host ports.
    pub async fn port_holders(&self) -> Result<PortHolders, EngineError> {
        let filters: HashMap<String, Vec<String>> = HashMap::from([("label".into(), vec![LABEL_PROJECT.to_string()])]);
        let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(EngineError::docker("list containers"))?;
        let mut holders = Vec::new();
        for c in list {
            let labels = c.labels.unwrap_or_default();
            let container = c
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            let project = labels.get(LABEL_PROJECT).cloned().unwrap_or_default();
            for port in labels.get(LABEL_PORTS).into_iter().flat_map(|p| p.split(',')) {
                if let Ok(port) = port.parse() {
                    holders.push(PortHolder {
                        port,
                        container: container.clone(),
                        project: project.clone(),
                    });
                }
            }
        }
        Ok(PortHolders(holders))
    }
}

/// A devstack container listening on a host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHolder {
    pub port: u16,
    pub container: String,
    pub project: String,
}

pub struct PortHolders(Vec<PortHolder>);

/// Who has a host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortUse<'a> {
    Free,
    /// A devstack container (of any project) listens there.
    Devstack(&'a PortHolder),
    /// Something else does.
    Other,
}

impl PortHolders {
    /// Whether `port` can be listened on, and if not, whether it is ours.
    pub fn port_use(&self, port: u16) -> PortUse<'_> {
        if port_free(port) {
            return PortUse::Free;
        }
        match self.0.iter().find(|h| h.port == port) {
            Some(holder) => PortUse::Devstack(holder),
            None => PortUse::Other,
        }
    }
}

/// Whether nothing listens on host `port` (any address).
fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
}
