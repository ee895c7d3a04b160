//! The gRPC side of the proxy: one service per interface, all routing through
//! [`Router`]; plus health, reflection and the admin HTTP listener.
//!
//! [`start`] binds and serves; [`RunningProxy::drain`] stops accepting, lets in-flight
//! requests finish, and gives up after a timeout.

mod admission;
mod connections;
mod keyvalue;
mod meta;
mod namespace;
mod pubsub;
mod queue;
mod routes;
mod subscription;
mod timeseries;
mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tower::util::BoxCloneSyncService;

use namespace::{Namespace, Router};

use crate::BackendError;
use crate::admin;
use crate::config::Config;
use crate::metrics::Metrics;

/// Why the proxy could not start serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} for the {what}{hint}")]
    Bind {
        /// Which listener (and its config key).
        what: &'static str,
        /// The address asked for.
        addr: SocketAddr,
        /// What usually causes this error.
        hint: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A namespace's driver could not be set up (drivers connect lazily, so this is a
    /// bad setting, not a server that is down).
    #[error("namespace {namespace}: cannot connect its {backend} backend")]
    Backend {
        /// The namespace.
        namespace: String,
        /// Its backend type.
        backend: &'static str,
        /// Why.
        #[source]
        source: BackendError,
    },
    /// The reflection service could not be built.
    #[error("gRPC reflection setup failed: {0}")]
    Reflection(String),
    /// A TLS file could not be read.
    #[error("tls.{field}: cannot read {path}")]
    TlsFile {
        /// `cert_file` or `key_file`.
        field: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The certificate and key do not make a usable TLS identity.
    #[error("tls: the certificate and key cannot be used: {0}")]
    Tls(String),
    /// The auth settings cannot be used.
    #[error("auth: {0}")]
    Auth(#[source] BackendError),
}

fn bind(addr: SocketAddr, what: &'static str, reuse_port: bool) -> Result<TcpListener, StartError> {
    let listen = || -> std::io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }?;
        // As TcpListener::bind does on unix: a restarted proxy rebinds at once.
        socket.set_reuseaddr(true)?;
        if reuse_port {
            socket.set_reuseport(true)?;
        }
        socket.bind(addr)?;
        socket.listen(1024)
    };
    listen().map_err(|source| StartError::Bind {
        what,
        addr,
        hint: match source.kind() {
            std::io::ErrorKind::AddrInUse if reuse_port => {
                " (another process holds this port without reuse_port, or as another user)"
            }
            std::io::ErrorKind::AddrInUse => {
                " (another process holds this port; choose another with the flag or the config, or set transport.reuse_port in every process that shares it)"
            }
            std::io::ErrorKind::AddrNotAvailable => " (this machine has no such address)",
            std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges)",
            _ => "",
        },
        source,
    })
}

/// A proxy serving on its listeners.
pub struct RunningProxy {
    /// Where gRPC is served (the port the kernel picked, for port 0).
    pub grpc_addr: SocketAddr,
    /// Where the admin HTTP endpoints are served.
    pub admin_addr: SocketAddr,
    router: Arc<Router>,
    shutdown: CancellationToken,
    /// Stops the admin listener; later than `shutdown`, so `/readyz` can say "draining".
    admin_stop: CancellationToken,
    health: tonic_health::server::HealthReporter,
    grpc: JoinHandle<()>,
    admin: JoinHandle<std::io::Result<()>>,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every in-flight request finished.
    Clean,
    /// The timeout passed with requests still in flight; they were cut off.
    TimedOut,
}

/// Binds the listeners, connects every namespace's backend, and starts serving.
pub async fn start(config: &Config) -> Result<RunningProxy, StartError> {
    let metrics = Metrics::new();
    let router = Arc::new(Router::new(
        namespaces(config, &metrics).await?,
        auth(config)?,
        metrics.clone(),
        &config.transport,
    ));

    let grpc_listener = bind(config.listen, "gRPC listener (listen)", config.transport.reuse_port)?;
    // Never shared: each process's /metrics and /readyz must be its own.
    let admin_listener = bind(config.admin_listen, "admin HTTP listener (admin_listen)", false)?;
    let grpc_addr = local_addr(&grpc_listener, config.listen);
    let admin_addr = local_addr(&admin_listener, config.admin_listen);

    let shutdown = CancellationToken::new();
    let (health, health_service) = tonic_health::server::health_reporter();
    for name in ServiceNames::new().0 {
        health.set_service_status(name, ServingStatus::Serving).await;
    }
    health.set_service_status("", ServingStatus::Serving).await;
    let transport = &config.transport;
    let incoming = TcpIncoming::from(grpc_listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(transport.tcp_keepalive));
    let tls = config.tls.as_ref().map(transport::tls_acceptor).transpose()?;
    let gateway = Arc::new(admission::Gateway {
        router: router.clone(),
        routes: routes(config, &router, &shutdown, BoxCloneSyncService::new(health_service))?,
    });
    let grpc = tokio::spawn(transport::serve(
        connections::Bounded::new(
            incoming,
            transport.max_connections,
            transport.max_connection_idle,
            metrics.clone(),
        ),
        tls,
        transport::http2(transport),
        gateway,
        shutdown.clone(),
    ));
    warn_about_unreachable_backends(config, &router);
    let admin_stop = CancellationToken::new();
    let readiness = router
        .namespaces()
        .map(|ns| admin::ReadyCheck {
            namespace: ns.name.clone(),
            backend: ns.backend.kind,
            health: ns.backend.health.clone(),
        })
        .collect();
    let admin = tokio::spawn(admin::serve(
        admin_listener,
        admin::AdminState::new(readiness, metrics, shutdown.clone()),
        admin_stop.clone(),
    ));
    tracing::info!(%grpc_addr, %admin_addr, namespaces = config.namespaces.len(), "prism-proxy serving");
    Ok(RunningProxy {
        grpc_addr,
        admin_addr,
        router,
        shutdown,
        admin_stop,
        health,
        grpc,
        admin,
    })
}

/// Checks each namespace's backend once, in the background (the check `/readyz` runs),
/// and logs a warning naming the namespace and its server (credentials hidden) for each
/// that does not answer: the proxy serves anyway, but an operator should see it at start.
fn warn_about_unreachable_backends(config: &Config, router: &Arc<Router>) {
    for ns in router.namespaces() {
        let server = config
            .namespaces
            .get(&ns.name)
            .and_then(|c| c.backend.shared_server())
            .map(|(server, _)| crate::config::redact_credentials(&server));
        let (ns, server) = (ns.clone(), server.unwrap_or_else(|| "in-process".into()));
        tokio::spawn(async move {
            let Some(problem) = admin::health_problem(ns.backend.health.as_ref()).await else {
                return;
            };
            tracing::warn!(
                namespace = %ns.name,
                backend = ns.backend.kind,
                %server,
                %problem,
                "backend not reachable at start; serving, /readyz reports it"
            );
        });
    }
}

/// Every configured namespace with its backend connected (lazily) and restricted to what
/// it serves.
async fn namespaces(config: &Config, metrics: &Metrics) -> Result<Vec<Namespace>, StartError> {
    let mut namespaces = Vec::new();
    for (name, ns) in &config.namespaces {
        let backend = ns.backend.connect().await.map_err(|source| StartError::Backend {
            namespace: name.clone(),
            backend: ns.backend.kind(),
            source,
        })?;
        let backend = backend.restrict(&ns.served());
        namespaces.push(
            Namespace::new(name.clone(), backend, ns.limits, metrics.namespace(name)).with_groups(ns.groups.clone()),
        );
    }
    Ok(namespaces)
}

/// The authentication `config.auth` asks for.
fn auth(config: &Config) -> Result<crate::auth::Auth, StartError> {
    Ok(match &config.auth {
        crate::config::AuthMode::None => crate::auth::Auth::None,
        #[cfg(feature = "oidc")]
        crate::config::AuthMode::Oidc(oidc) => crate::auth::Auth::Oidc(Box::new(
            crate::auth::OidcValidator::new(oidc.clone()).map_err(StartError::Auth)?,
        )),
        #[cfg(not(feature = "oidc"))]
        crate::config::AuthMode::Oidc(_) => {
            return Err(StartError::Auth(BackendError::Unimplemented(
                "this build has no OIDC support (Cargo feature `oidc`)".into(),
            )));
        }
    })
}

/// Every service of the gRPC listener: the Prism interfaces, reflection and `health`.
fn routes(
    config: &Config,
    router: &Arc<Router>,
    shutdown: &CancellationToken,
    health: routes::PlainService,
) -> Result<routes::Routes, StartError> {
    let reflection_v1 = reflection()
        .build_v1()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    let plain = vec![
        (tonic_health::pb::health_server::SERVICE_NAME, health),
        (
            tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
            BoxCloneSyncService::new(reflection_v1),
        ),
        (
            tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME,
            BoxCloneSyncService::new(reflection_v1alpha),
        ),
    ];
    // Admission refuses a message over its namespace's limit from its prefix; the decoder's
    // own bound is the largest any namespace allows.
    let max_message_bytes = config
        .namespaces
        .values()
        .map(|ns| ns.limits.max_message_bytes as usize)
        .max()
        .unwrap_or_default();
    let handlers = routes::Handlers {
        keyvalue: Arc::new(keyvalue::KeyValueService::new(router.clone())),
        pubsub: pubsub::PubSubService::new(router.clone(), shutdown.clone()),
        queue: queue::QueueService::new(router.clone()),
        timeseries: timeseries::TimeSeriesService::new(router.clone()),
        max_message_bytes,
    };
    Ok(routes::Routes::new(handlers, plain))
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(prism_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

struct ServiceNames([&'static str; 8]);

impl ServiceNames {
    fn new() -> ServiceNames {
        use prism_proto::{
            keyvalue::v1 as kv, meta::v1 as meta, pubsub::v1 as ps, queue::v1 as q, timeseries::v1 as ts,
        };
        ServiceNames([
            kv::key_value_basic_server::SERVICE_NAME,
            kv::key_value_ttl_server::SERVICE_NAME,
            kv::key_value_scan_server::SERVICE_NAME,
            kv::key_value_batch_server::SERVICE_NAME,
            ps::pub_sub_basic_server::SERVICE_NAME,
            q::queue_basic_server::SERVICE_NAME,
            ts::time_series_basic_server::SERVICE_NAME,
            meta::meta_server::SERVICE_NAME,
        ])
    }
}

fn local_addr(listener: &TcpListener, configured: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or(configured)
}

impl RunningProxy {
    /// Stops accepting, waits up to `timeout` for in-flight requests, then stops.
    pub async fn drain(self, timeout: Duration) -> DrainOutcome {
        let services = ServiceNames::new();
        for name in std::iter::once("").chain(services.0) {
            self.health.set_service_status(name, ServingStatus::NotServing).await;
        }
        self.shutdown.cancel();
        for namespace in self.router.namespaces() {
            namespace.backend.health.draining();
        }
        let outcome = match tokio::time::timeout(timeout, self.grpc).await {
            Ok(_) => DrainOutcome::Clean,
            Err(_) => DrainOutcome::TimedOut,
        };
        self.admin_stop.cancel();
        if let Ok(Ok(Err(e))) = tokio::time::timeout(Duration::from_secs(1), self.admin).await {
            tracing::warn!(error = %e, "admin server ended with an error");
        }
        outcome
    }

    /// A token cancelled when the drain begins.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }
}
