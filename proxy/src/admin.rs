//! Admin HTTP: `/healthz` (the process answers), `/readyz` (every backend answers and the
//! proxy is not draining), `/metrics` (Prometheus text).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::backends::HealthCheck;
use crate::metrics::Metrics;

/// How long `/readyz` waits for one backend's health check.
const READY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// One line of `/readyz`: a namespace and the health check of its backend.
pub(crate) struct ReadyCheck {
    pub(crate) namespace: String,
    pub(crate) backend: &'static str,
    pub(crate) health: Arc<dyn HealthCheck>,
}

#[derive(Clone)]
pub(crate) struct AdminState {
    /// Sorted by namespace.
    readiness: Arc<Vec<ReadyCheck>>,
    metrics: Metrics,
    draining: CancellationToken,
}

impl AdminState {
    pub(crate) fn new(mut readiness: Vec<ReadyCheck>, metrics: Metrics, draining: CancellationToken) -> AdminState {
        readiness.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        AdminState {
            readiness: Arc::new(readiness),
            metrics,
            draining,
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
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
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
    let problems = futures::future::join_all(
        state
            .readiness
            .iter()
            .map(|check| health_problem(check.health.as_ref())),
    )
    .await;
    state
        .readiness
        .iter()
        .zip(problems)
        .inspect(|(check, problem)| {
            state
                .metrics
                .set_backend_up(&check.namespace, check.backend, problem.is_none())
        })
        .collect()
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
