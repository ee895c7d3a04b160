//! Namespaces and request routing: the `x-prism-namespace` metadata picks the namespace;
//! the namespace holds its backend, limits, in-flight permits and metrics.
//!
//! [`Router::admit`] runs on a request's headers, before its body is read (see
//! `admission`); the handler then takes the admitted [`Call`] with [`Router::route`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use prism_proto::NAMESPACE_HEADER;
use prism_proto::common::v1::ErrorReason;
use tonic::{Request, Response};

use crate::auth::Auth;
use crate::backends::Backend;
use crate::limits::Limits;
use crate::metrics::{Metrics, NamespaceMetrics};
use crate::status::{to_status, to_status_with_reason};
use crate::{BackendError, BackendResult, Operation};

/// One configured namespace: its backend (restricted to what it serves), limits, who may
/// use it, in-flight permits and metrics.
pub(crate) struct Namespace {
    pub(crate) name: String,
    pub(crate) backend: Backend,
    pub(crate) limits: Limits,
    /// Token groups allowed to use it (`auth: oidc`); `None`: any authenticated caller.
    pub(crate) groups: Option<Vec<String>>,
    /// Requests in flight (`max_in_flight`).
    permits: Arc<Semaphore>,
    /// Subscriptions open (`max_subscriptions`).
    subscriptions: Arc<Semaphore>,
    /// Request message bytes held (`max_buffered_bytes`).
    pub(crate) buffered: Arc<Semaphore>,
    pub(crate) metrics: NamespaceMetrics,
}

/// A unary response's share of its namespace's `max_buffered_bytes`, in the response's
/// extensions; the admission layer holds it until the response body has been sent, so
/// a client that does not read (an HTTP/2 window of 0) holds at most that budget.
#[derive(Clone)]
pub(crate) struct ResponseBytes {
    _permit: Arc<OwnedSemaphorePermit>,
}

/// The request field that asks for a smaller answer to `op`, for the error naming
/// `max_response_bytes`.
fn response_field(op: Operation) -> &'static str {
    match op {
        Operation::KvBatchGet => "keys",
        Operation::KvScan | Operation::TsQuery => "limit",
        Operation::TsAggregate => "bucket_ms",
        Operation::QueueReceive => "max_messages",
        _ => "(response)",
    }
}

/// Decrements the in-flight gauge however the request ends (including cancellation).
struct InFlight<'a>(&'a prometheus::IntGauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Namespace {
    pub(crate) fn new(name: String, backend: Backend, limits: Limits, metrics: NamespaceMetrics) -> Namespace {
        Namespace {
            permits: Arc::new(Semaphore::new(limits.max_in_flight as usize)),
            subscriptions: Arc::new(Semaphore::new(limits.max_subscriptions as usize)),
            buffered: Arc::new(Semaphore::new(limits.max_buffered_bytes as usize)),
            name,
            backend,
            limits,
            groups: None,
            metrics,
        }
    }

    /// Checks a response of `bytes` for `op` against `max_response_bytes` and takes its
    /// bytes from the namespace's budget, so responses clients do not read cannot pile up.
    fn hold_response(&self, op: Operation, bytes: usize) -> BackendResult<ResponseBytes> {
        self.limits.check_response(response_field(op), bytes)?;
        let permit = u32::try_from(bytes)
            .ok()
            .and_then(|n| self.buffered.clone().try_acquire_many_owned(n).ok())
            .ok_or_else(|| {
                BackendError::Overloaded(format!(
                    "namespace {} holds its limit of message bytes (max_buffered_bytes={}) in requests and unread responses; retry shortly",
                    self.name, self.limits.max_buffered_bytes
                ))
            })?;
        Ok(ResponseBytes {
            _permit: Arc::new(permit),
        })
    }

    pub(crate) fn with_groups(mut self, groups: Option<Vec<String>>) -> Namespace {
        self.groups = groups;
        self
    }

    /// The handle `op` needs, or UNIMPLEMENTED when this namespace does not serve its
    /// interface.
    fn serve<T: ?Sized>(&self, handle: &Option<Arc<T>>, op: Operation) -> Result<Arc<T>, Status> {
        handle.clone().ok_or_else(|| {
            let interface = op.interface().map_or("meta", |i| i.as_str());
            let err = BackendError::Unimplemented(format!(
                "namespace {} does not serve {interface} (it serves: {})",
                self.name,
                self.backend
                    .interfaces()
                    .iter()
                    .map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            to_status(&err, Some(&self.name))
        })
    }

    /// A place for `op`: a subscription's among `max_subscriptions`, any other request's
    /// among `max_in_flight`; RESOURCE_EXHAUSTED when all are taken.
    fn place(&self, op: Operation) -> Result<OwnedSemaphorePermit, Status> {
        let (permits, what, limit) = match op {
            Operation::PubsubSubscribe => (
                &self.subscriptions,
                "subscriptions open (max_subscriptions)",
                self.limits.max_subscriptions,
            ),
            _ => (&self.permits, "requests (max_in_flight)", self.limits.max_in_flight),
        };
        permits.clone().try_acquire_owned().map_err(|_| {
            let err = BackendError::Overloaded(format!(
                "namespace {} is at its limit of {limit} {what}; retry shortly",
                self.name
            ));
            to_status(&err, Some(&self.name))
        })
    }

    /// Runs one admitted request: metrics, error mapping.
    async fn run<R>(
        &self,
        op: Operation,
        work: impl Future<Output = BackendResult<R>>,
    ) -> Result<tonic::Response<R>, Status> {
        let start = Instant::now();
        self.metrics.in_flight.inc();
        let _in_flight = InFlight(&self.metrics.in_flight);
        let result = work.await;
        let code = result.as_ref().map_or_else(crate::status::code_of, |_| Code::Ok);
        self.metrics.record(op, start.elapsed(), code);
        result
            .map(tonic::Response::new)
            .map_err(|e| to_status(&e, Some(&self.name)))
    }
}

/// An admitted request: its namespace, its place there (released when the last clone is
/// dropped; a subscription's stream keeps one) and its deadline (from `grpc-timeout`).
/// Derefs to the namespace.
#[derive(Clone)]
pub(crate) struct Call {
    ns: Arc<Namespace>,
    _place: Arc<OwnedSemaphorePermit>,
    /// The request message's share of the namespace's and the proxy's request-byte
    /// budgets, taken as its bytes arrive, given back when the request is done.
    pub(crate) buffered: Arc<std::sync::OnceLock<super::admission::Paid>>,
    deadline: Option<Duration>,
    /// The caller's trace context (W3C `traceparent`), when traces are exported.
    parent: Option<crate::telemetry::ParentContext>,
}

impl std::ops::Deref for Call {
    type Target = Namespace;
    fn deref(&self) -> &Namespace {
        &self.ns
    }
}

/// How much earlier than the deadline the proxy answers DEADLINE_EXCEEDED: tonic (on both
/// sides) enforces `grpc-timeout` itself and reports a bare CANCELLED, so the proxy must
/// answer first, with room for the 1 ms timer granularity and the trip back.
fn deadline_margin(deadline: Duration) -> Duration {
    (deadline / 20).clamp(Duration::from_millis(2), Duration::from_millis(20))
}

impl Call {
    /// The namespace, shared.
    pub(crate) fn namespace(&self) -> &Arc<Namespace> {
        &self.ns
    }

    /// [`Namespace::run`] within the request's deadline, in a `prism.request` span.
    pub(crate) async fn run<R>(
        &self,
        op: Operation,
        work: impl Future<Output = BackendResult<R>>,
    ) -> Result<tonic::Response<R>, Status> {
        let span = tracing::trace_span!(
            target: crate::telemetry::REQUEST_TARGET,
            "prism.request",
            otel.name = op.as_str(),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = op.as_str(),
            prism.namespace = %self.ns.name,
            prism.backend = self.ns.backend.kind,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        if span.is_disabled() {
            return self.run_within_deadline(op, work).await;
        }
        crate::telemetry::set_parent(&span, self.parent.as_ref());
        let result = tracing::Instrument::instrument(self.run_within_deadline(op, work), span.clone()).await;
        let code = result.as_ref().map_or_else(|s| s.code(), |_| Code::Ok);
        span.record("rpc.grpc.status_code", code as i32);
        result
    }

    async fn run_within_deadline<R>(
        &self,
        op: Operation,
        work: impl Future<Output = BackendResult<R>>,
    ) -> Result<tonic::Response<R>, Status> {
        let Some(deadline) = self.deadline else {
            return self.ns.run(op, work).await;
        };
        let start = Instant::now();
        match tokio::time::timeout(
            deadline.saturating_sub(deadline_margin(deadline)),
            self.ns.run(op, work),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => {
                self.ns.metrics.record(op, start.elapsed(), Code::DeadlineExceeded);
                let err = BackendError::DeadlineExceeded(format!(
                    "{} did not finish within the request's deadline of {deadline:?}",
                    op.as_str()
                ));
                Err(to_status(&err, Some(&self.ns.name)))
            }
        }
    }
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The call `admission` admitted `request` as.
pub(crate) fn admitted<Req>(request: &mut Request<Req>) -> Result<Call, Status> {
    request
        .extensions_mut()
        .remove::<Call>()
        .ok_or_else(|| Status::internal("the request was not admitted (the admission layer is missing)"))
}

/// All namespaces, by name, and the authentication in front of them.
pub(crate) struct Router {
    namespaces: HashMap<String, Arc<Namespace>>,
    /// Request message bytes held at once (`transport.max_buffered_request_bytes`).
    pub(crate) request_bytes: Arc<Semaphore>,
    /// How long a request's message may take to arrive (`transport.request_body_timeout`).
    pub(crate) request_body_timeout: Duration,
    auth: Auth,
    /// Where requests refused before a namespace is known (unauthenticated, unknown or
    /// missing namespace) are counted, under `namespace=""`.
    metrics: Metrics,
}

impl Router {
    pub(crate) fn new(
        namespaces: impl IntoIterator<Item = Namespace>,
        auth: Auth,
        metrics: Metrics,
        transport: &crate::config::TransportConfig,
    ) -> Router {
        Router {
            request_body_timeout: transport.request_body_timeout,
            namespaces: namespaces.into_iter().map(|n| (n.name.clone(), Arc::new(n))).collect(),
            request_bytes: Arc::new(Semaphore::new(transport.max_buffered_request_bytes as usize)),
            auth,
            metrics,
        }
    }

    pub(crate) fn namespaces(&self) -> impl Iterator<Item = &Arc<Namespace>> {
        self.namespaces.values()
    }

    /// The whole of a unary handler but its own logic: the namespace the request names
    /// (authenticated, allowed), the backend handle `op` needs (`pick` chooses it, for
    /// example `|b| &b.keyvalue_basic`), then `work` with the limits and the request body,
    /// under the in-flight limit, the deadline, metrics and a span.
    /// The response is checked against `max_response_bytes` and its bytes held from the
    /// namespace's `max_buffered_bytes` until it has been sent (see [`ResponseBytes`]).
    pub(crate) async fn unary<Req, Res, T, Fut>(
        &self,
        request: Request<Req>,
        op: Operation,
        pick: impl FnOnce(&Backend) -> &Option<Arc<T>>,
        work: impl FnOnce(Arc<T>, Limits, Req) -> Fut,
    ) -> Result<Response<Res>, Status>
    where
        T: ?Sized,
        Res: prost::Message,
        Fut: Future<Output = BackendResult<Res>>,
    {
        let (call, handle, body) = self.route(request, op, pick).await?;
        let limits = call.limits;
        let ns = call.namespace().clone();
        let response = call
            .run(op, async move {
                let response = work(handle, limits, body).await?;
                let held = ns.hold_response(op, response.encoded_len())?;
                Ok((response, held))
            })
            .await?;
        let (metadata, (response, held), mut extensions) = response.into_parts();
        extensions.insert(held);
        Ok(Response::from_parts(metadata, response, extensions))
    }

    /// The first half of [`Router::unary`], for handlers that go on after the call (a
    /// subscription's stream): the call, the handle and the request body.
    pub(crate) async fn route<Req, T: ?Sized>(
        &self,
        mut request: Request<Req>,
        op: Operation,
        pick: impl FnOnce(&Backend) -> &Option<Arc<T>>,
    ) -> Result<(Call, Arc<T>, Req), Status> {
        let started = Instant::now();
        let call = admitted(&mut request)?;
        let handle = call.serve(pick(&call.backend), op).inspect_err(|status| {
            call.metrics.record(op, started.elapsed(), status.code());
        })?;
        Ok((call, handle, request.into_inner()))
    }

    /// Admits a request from its headers: the caller authenticated, the namespace it
    /// names and allows it, a place there taken, the deadline read. Refusals count in
    /// `/metrics` like any other answer to `op`, timed from `started`.
    pub(crate) async fn admit(&self, metadata: &MetadataMap, op: Operation, started: Instant) -> Result<Call, Status> {
        let refused = |ns: Option<&Namespace>, status: Status| {
            match ns {
                Some(ns) => ns.metrics.record(op, started.elapsed(), status.code()),
                None => self.metrics.record_refused(op, started.elapsed(), status.code()),
            }
            status
        };
        // Authentication comes first: a caller without a valid token learns nothing about
        // the configuration, not even whether a namespace exists.
        let caller = self
            .auth
            .authenticate(metadata)
            .await
            .map_err(|e| refused(None, to_status(&e, None)))?;
        let ns = self.lookup(metadata, &caller).map_err(|status| refused(None, status))?;
        self.auth
            .permit(&caller, &ns.name, ns.groups.as_deref())
            .map_err(|e| refused(Some(&ns), to_status(&e, Some(&ns.name))))?;
        let place = ns.place(op).map_err(|status| refused(Some(&ns), status))?;
        Ok(Call {
            ns,
            _place: Arc::new(place),
            buffered: Arc::default(),
            deadline: grpc_timeout(metadata),
            parent: crate::telemetry::parent_context(metadata),
        })
    }

    /// The namespace the request names; NOT_FOUND lists only the namespaces `caller` may
    /// use.
    fn lookup(&self, metadata: &MetadataMap, caller: &crate::auth::Caller) -> Result<Arc<Namespace>, Status> {
        let Some(value) = metadata.get(NAMESPACE_HEADER) else {
            let err = BackendError::invalid(
                NAMESPACE_HEADER,
                format!("metadata {NAMESPACE_HEADER} is required to choose a namespace"),
            );
            return Err(to_status_with_reason(&err, ErrorReason::UnknownNamespace, None));
        };
        let name = value.to_str().unwrap_or_default();
        self.namespaces.get(name).cloned().ok_or_else(|| {
            let mut usable: Vec<&str> = self
                .namespaces
                .values()
                .filter(|ns| self.auth.may_use(caller, ns.groups.as_deref()))
                .map(|ns| ns.name.as_str())
                .collect();
            usable.sort_unstable();
            let err = BackendError::NotFound(format!("no namespace {name:?} (yours: {})", usable.join(", ")));
            to_status_with_reason(&err, ErrorReason::UnknownNamespace, None)
        })
    }
}
