//! Admin HTTP: `/healthz` (the process answers), `/readyz` (every backend answers and the
//! proxy is not draining), `/metrics` (Prometheus text).
//!
//! Backend checks are shared: a check result at most [`CHECK_FRESHNESS`] old is reused,
//! and callers arriving while a check runs wait for that one, so any number of probes and
//! scrapers cost the backends one round of checks per second. A client has
//! [`HEADER_READ_TIMEOUT`] to send its request headers, and at most
//! [`MAX_CONNECTIONS`] connections are served at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::backends::HealthCheck;
use crate::metrics::Metrics;

/// How long `/readyz` waits for one backend's health check.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How old a round of backend checks may be and still answer `/readyz` and `/metrics`.
const CHECK_FRESHNESS: Duration = Duration::from_secs(1);
/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Admin connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 64;

/// One line of `/readyz`: a namespace and the health check of its backend.
pub(crate) struct ReadyCheck {
    pub(crate) namespace: String,
    pub(crate) backend: &'static str,
    pub(crate) health: Arc<dyn HealthCheck>,
}

/// A round of backend checks: when it started, and each backend's problem (`None`: ok) in
/// the order of `AdminState::readiness`.
type Checked = (Instant, Arc<Vec<Option<String>>>);

#[derive(Clone)]
pub(crate) struct AdminState {
    /// Sorted by namespace.
    readiness: Arc<Vec<ReadyCheck>>,
    metrics: Metrics,
    draining: CancellationToken,
    /// The last round of checks and when it started; locked while a round runs.
    last_checks: Arc<tokio::sync::Mutex<Option<Checked>>>,
}

impl AdminState {
    pub(crate) fn new(mut readiness: Vec<ReadyCheck>, metrics: Metrics, draining: CancellationToken) -> AdminState {
        readiness.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        AdminState {
            readiness: Arc::new(readiness),
            metrics,
            draining,
            last_checks: Arc::default(),
        }
    }
}

pub(crate) async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let places = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let place = tokio::select! {
            place = places.clone().acquire_owned() => place.map_err(std::io::Error::other)?,
            () = shutdown.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::debug!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(place);
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), graceful.shutdown()).await;
    Ok(())
}

/// What is wrong with a backend now (`None`: it answered), within [`READY_CHECK_TIMEOUT`].
pub(crate) async fn health_problem(health: &dyn HealthCheck) -> Option<String> {
    match tokio::time::timeout(READY_CHECK_TIMEOUT, health.check()).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("health check timed out after {READY_CHECK_TIMEOUT:?}")),
    }
}

/// Every backend's health check, all at once (a hung backend costs one timeout, not one
/// per namespace), with the verdict for `/readyz` (`None`: ok); records each result in the
/// `prism_backend_up` gauge.
async fn check_backends(state: &AdminState) -> Vec<(&ReadyCheck, Option<String>)> {
    let problems = {
        let mut last = state.last_checks.lock().await;
        match &*last {
            Some((at, problems)) if at.elapsed() < CHECK_FRESHNESS => problems.clone(),
            _ => {
                let started = Instant::now();
                let problems = Arc::new(
                    futures::future::join_all(
                        state
                            .readiness
                            .iter()
                            .map(|check| health_problem(check.health.as_ref())),
                    )
                    .await,
                );
                for (check, problem) in state.readiness.iter().zip(problems.iter()) {
                    state
                        .metrics
                        .set_backend_up(&check.namespace, check.backend, problem.is_none());
                }
                *last = Some((started, problems.clone()));
                problems
            }
        }
    };
    state.readiness.iter().zip(problems.iter().cloned()).collect()
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    if state.draining.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n".to_string());
    }
    let mut ready = true;
    let mut body = String::new();
    for (check, problem) in check_backends(&state).await {
        ready &= problem.is_none();
        let verdict = problem.unwrap_or_else(|| "ok".to_string());
        body.push_str(&format!("{} ({}): {verdict}\n", check.namespace, check.backend));
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    // The up gauge says what the backends answer now, as /readyz would.
    check_backends(&state).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
