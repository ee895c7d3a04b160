//! Namespaces and request routing: the `x-prism-namespace` metadata picks the namespace;
//! the namespace holds its backend, limits, in-flight permits and metrics.
//!
//! [`Router::admit`] runs on a request's headers, before its body is read (see
//! `admission`); the handler then takes the admitted [`Call`] with [`Router::route`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use tonic::{Code, Status};

use prism_proto::NAMESPACE_HEADER;
use prism_proto::common::v1::ErrorReason;
use tonic::{Request, Response};

use crate::auth::Auth;
use crate::backends::Backend;
use crate::budget::{Budget, Taken};
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
    permits: Arc<Budget>,
    /// Subscriptions open (`max_subscriptions`).
    subscriptions: Arc<Budget>,
    /// Request message bytes held (`max_buffered_bytes`).
    pub(crate) buffered: Arc<Budget>,
    pub(crate) metrics: NamespaceMetrics,
}

/// A unary response's share of its namespace's `max_buffered_bytes`, left in its
/// [`Call`] by the handler; the admission layer holds it until the response body has been
/// sent, so a client that does not read (an HTTP/2 window of 0) holds at most that
/// budget.
pub(crate) struct ResponseBytes {
    _taken: Taken,
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
            permits: Budget::new(limits.max_in_flight as usize),
            subscriptions: Budget::new(limits.max_subscriptions as usize),
            buffered: Budget::new(limits.max_buffered_bytes as usize),
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
        let taken = self.buffered.try_hold(bytes).ok_or_else(|| {
            BackendError::Overloaded(format!(
                "namespace {} holds its limit of message bytes (max_buffered_bytes={}) in requests and unread responses; retry shortly",
                self.name, self.limits.max_buffered_bytes
            ))
        })?;
        Ok(ResponseBytes { _taken: taken })
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

    /// The budget of places `op` takes one of: `max_subscriptions` for a subscription,
    /// `max_in_flight` for any other request.
    fn places(&self, op: Operation) -> &Budget {
        match op {
            Operation::PubsubSubscribe => &self.subscriptions,
            _ => &self.permits,
        }
    }

    /// Takes a place for `op` (see [`Namespace::places`]); RESOURCE_EXHAUSTED when all are
    /// taken. The caller gives it back.
    fn take_place(&self, op: Operation) -> Result<(), Status> {
        if self.places(op).try_take(1) {
            return Ok(());
        }
        let (what, limit) = match op {
            Operation::PubsubSubscribe => ("subscriptions open (max_subscriptions)", self.limits.max_subscriptions),
            _ => ("requests (max_in_flight)", self.limits.max_in_flight),
        };
        let err = BackendError::Overloaded(format!(
            "namespace {} is at its limit of {limit} {what}; retry shortly",
            self.name
        ));
        Err(to_status(&err, Some(&self.name)))
    }
}

/// An admitted request: its namespace, its place there (released when the last clone is
/// dropped; a subscription's stream keeps one) and its deadline (from `grpc-timeout`).
/// Derefs to the namespace. One allocation per request, shared by the admission layer,
/// the request body and the handler.
#[derive(Clone)]
pub(crate) struct Call(Arc<CallState>);

struct CallState {
    ns: Arc<Namespace>,
    op: Operation,
    /// When its headers were admitted: request latency counts from here.
    started: Instant,
    /// The proxy's budget of request bytes (`transport.max_buffered_request_bytes`).
    proxy_bytes: Arc<Budget>,
    /// Request message bytes taken from the namespace's and the proxy's budgets as they
    /// arrived, given back when the call is done.
    request_bytes: AtomicUsize,
    /// How long the request message may take to arrive (`transport.request_body_timeout`).
    body_timeout: Duration,
    /// The response's share of the byte budget, from the handler to the admission layer.
    response: parking_lot::Mutex<Option<ResponseBytes>>,
    deadline: Option<Duration>,
    /// The caller's trace context (W3C `traceparent`), when traces are exported.
    parent: Option<crate::telemetry::ParentContext>,
}

impl std::ops::Deref for Call {
    type Target = Namespace;
    fn deref(&self) -> &Namespace {
        &self.0.ns
    }
}

/// The call is done: its place and its request bytes go back.
impl Drop for CallState {
    fn drop(&mut self) {
        self.ns.places(self.op).give_back(1);
        let bytes = *self.request_bytes.get_mut();
        if bytes > 0 {
            self.ns.buffered.give_back(bytes);
            self.proxy_bytes.give_back(bytes);
        }
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
        &self.0.ns
    }

    /// Takes `n` more request bytes from the namespace's budget (`max_buffered_bytes`), so
    /// one namespace cannot take the proxy's, then from the proxy's; they are held until
    /// the call is done. On a refusal nothing is taken; the error says whose budget is
    /// full.
    pub(crate) fn pay_request_bytes(&self, n: usize) -> BackendResult<()> {
        let state = &self.0;
        let overloaded = |what: String| BackendError::Overloaded(format!("{what}; retry shortly"));
        if !state.ns.buffered.try_take(n) {
            return Err(overloaded(format!(
                "namespace {} holds its limit of request bytes (max_buffered_bytes={})",
                state.ns.name, state.ns.limits.max_buffered_bytes
            )));
        }
        if !state.proxy_bytes.try_take(n) {
            state.ns.buffered.give_back(n);
            return Err(overloaded(
                "the proxy holds its limit of request bytes (transport.max_buffered_request_bytes)".into(),
            ));
        }
        state.request_bytes.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// The operation the call was admitted for.
    pub(crate) fn op(&self) -> Operation {
        self.0.op
    }

    /// When the call was admitted.
    pub(crate) fn started(&self) -> Instant {
        self.0.started
    }

    /// How long its request message may take to arrive.
    pub(crate) fn body_timeout(&self) -> Duration {
        self.0.body_timeout
    }

    /// The response's share of the byte budget, held until the admission layer takes it.
    fn hold_response_bytes(&self, bytes: ResponseBytes) {
        *self.0.response.lock() = Some(bytes);
    }

    /// What [`Call::hold_response_bytes`] left, once the handler has answered.
    pub(crate) fn take_response_bytes(&self) -> Option<ResponseBytes> {
        self.0.response.lock().take()
    }

    /// Runs `work` for this call: the in-flight gauge, metrics (latency from admission)
    /// and error mapping, within the request's deadline and in a `prism.request` span
    /// when traces are exported.
    pub(crate) async fn run<R>(
        &self,
        op: Operation,
        work: impl Future<Output = BackendResult<R>>,
    ) -> Result<tonic::Response<R>, Status> {
        let ns = &self.0.ns;
        let span = tracing::trace_span!(
            target: crate::telemetry::REQUEST_TARGET,
            "prism.request",
            otel.name = op.as_str(),
            otel.kind = "server",
            rpc.system = "grpc",
            rpc.method = op.as_str(),
            prism.namespace = %ns.name,
            prism.backend = ns.backend.kind,
            rpc.grpc.status_code = tracing::field::Empty,
        );
        ns.metrics.in_flight.inc();
        let _in_flight = InFlight(&ns.metrics.in_flight);
        let result = if self.0.deadline.is_none() && span.is_disabled() {
            drop(span);
            work.await
        } else {
            // Boxed, so that the usual request's future (the handler's, moved at each
            // await) does not carry a timer and an instrumented copy of `work`.
            Box::pin(self.guarded(op, span, work)).await
        };
        let code = result.as_ref().map_or_else(crate::status::code_of, |_| Code::Ok);
        ns.metrics.record(op, self.0.started.elapsed(), code);
        result
            .map(tonic::Response::new)
            .map_err(|e| to_status(&e, Some(&ns.name)))
    }

    /// `work` within the request's deadline, in `span` unless it is disabled.
    async fn guarded<R>(
        &self,
        op: Operation,
        span: tracing::Span,
        work: impl Future<Output = BackendResult<R>>,
    ) -> BackendResult<R> {
        let within = async {
            let Some(deadline) = self.0.deadline else {
                return work.await;
            };
            // The deadline counts from when the request arrived, as the client's does.
            let left = deadline.saturating_sub(deadline_margin(deadline));
            tokio::time::timeout_at((self.0.started + left).into(), work)
                .await
                .unwrap_or_else(|_| {
                    Err(BackendError::DeadlineExceeded(format!(
                        "{} did not finish within the request's deadline of {deadline:?}",
                        op.as_str()
                    )))
                })
        };
        if span.is_disabled() {
            return within.await;
        }
        crate::telemetry::set_parent(&span, self.0.parent.as_ref());
        let result = tracing::Instrument::instrument(within, span.clone()).await;
        let code = result.as_ref().map_or_else(crate::status::code_of, |_| Code::Ok);
        span.record("rpc.grpc.status_code", code as i32);
        result
    }
}

/// The headers every request is admitted by.
#[derive(Default)]
struct Routing<'a> {
    namespace: Option<&'a HeaderValue>,
    timeout: Option<&'a HeaderValue>,
}

impl<'a> Routing<'a> {
    /// Both found in one pass over the few headers a request has: a lookup by name hashes
    /// the name, which cost more than the pass (reports/baseline/proxy.md). The first
    /// value of a repeated header counts, as with a lookup.
    fn of(headers: &'a HeaderMap) -> Routing<'a> {
        static NAMESPACE: HeaderName = HeaderName::from_static(NAMESPACE_HEADER);
        static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
        let mut found = Routing::default();
        for (name, value) in headers {
            if *name == NAMESPACE {
                found.namespace.get_or_insert(value);
            } else if *name == GRPC_TIMEOUT {
                found.timeout.get_or_insert(value);
            }
        }
        found
    }
}

/// Parses a `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn grpc_timeout(value: Option<&HeaderValue>) -> Option<Duration> {
    let value = value?.to_str().ok()?;
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

tokio::task_local! {
    /// The call being served, from the admission layer to its handler: a task-local costs
    /// less per request than the request's extensions, whose first entry allocates a map.
    static ADMITTED: Call;
}

/// Runs `poll` (a step of the call's handler) with `call` as the call [`admitted`]
/// gives it.
pub(crate) fn serving<R>(call: &Call, poll: impl FnOnce() -> R) -> R {
    ADMITTED.sync_scope(call.clone(), poll)
}

/// The call `admission` admitted the request being handled as.
pub(crate) fn admitted() -> Result<Call, Status> {
    ADMITTED
        .try_with(Call::clone)
        .map_err(|_| Status::internal("the request was not admitted (the admission layer is missing)"))
}

/// All namespaces, by name, and the authentication in front of them.
pub(crate) struct Router {
    /// By name as bytes: the header's bytes are looked up as they came.
    namespaces: HashMap<Box<[u8]>, Arc<Namespace>, foldhash::fast::RandomState>,
    /// Request message bytes held at once (`transport.max_buffered_request_bytes`).
    request_bytes: Arc<Budget>,
    /// How long a request's message may take to arrive (`transport.request_body_timeout`).
    request_body_timeout: Duration,
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
            namespaces: namespaces
                .into_iter()
                .map(|n| (n.name.as_bytes().into(), Arc::new(n)))
                .collect(),
            request_bytes: Budget::new(transport.max_buffered_request_bytes as usize),
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
        let (call, handle, body) = self.route(request, op, pick)?;
        let limits = call.limits;
        call.run(op, async {
            let response = work(handle, limits, body).await?;
            call.hold_response_bytes(call.hold_response(op, response.encoded_len())?);
            Ok(response)
        })
        .await
    }

    /// The first half of [`Router::unary`], for handlers that go on after the call (a
    /// subscription's stream): the call, the handle and the request body.
    pub(crate) fn route<Req, T: ?Sized>(
        &self,
        request: Request<Req>,
        op: Operation,
        pick: impl FnOnce(&Backend) -> &Option<Arc<T>>,
    ) -> Result<(Call, Arc<T>, Req), Status> {
        let call = admitted()?;
        let handle = call.serve(pick(&call.backend), op).inspect_err(|status| {
            call.metrics.record(op, call.started().elapsed(), status.code());
        })?;
        Ok((call, handle, request.into_inner()))
    }

    /// Admits a request from its headers: the caller authenticated, the namespace it
    /// names and allows it, a place there taken, the deadline read. Refusals count in
    /// `/metrics` like any other answer to `op`, timed from `started`.
    pub(crate) async fn admit(&self, headers: &HeaderMap, op: Operation, started: Instant) -> Result<Call, Status> {
        // Authentication comes first: a caller without a valid token learns nothing about
        // the configuration, not even whether a namespace exists.
        let caller = self.auth.authenticate(headers).await;
        self.admit_caller(caller, headers, op, started)
    }

    /// [`Router::admit`] when authentication needs no waiting (`auth: none`), at once;
    /// `None` when it does.
    pub(crate) fn admit_now(
        &self,
        headers: &HeaderMap,
        op: Operation,
        started: Instant,
    ) -> Option<Result<Call, Status>> {
        let caller = self.auth.authenticate_now()?;
        Some(self.admit_caller(caller, headers, op, started))
    }

    /// The rest of [`Router::admit`] once the caller is known (or refused).
    fn admit_caller(
        &self,
        caller: Result<crate::auth::Caller, BackendError>,
        headers: &HeaderMap,
        op: Operation,
        started: Instant,
    ) -> Result<Call, Status> {
        let refused = |ns: Option<&Namespace>, status: Status| {
            match ns {
                Some(ns) => ns.metrics.record(op, started.elapsed(), status.code()),
                None => self.metrics.record_refused(op, started.elapsed(), status.code()),
            }
            status
        };
        let caller = caller.map_err(|e| refused(None, to_status(&e, None)))?;
        let routing = Routing::of(headers);
        let ns = self
            .lookup(routing.namespace, &caller)
            .map_err(|status| refused(None, status))?;
        self.auth
            .permit(&caller, &ns.name, ns.groups.as_deref())
            .map_err(|e| refused(Some(&ns), to_status(&e, Some(&ns.name))))?;
        ns.take_place(op).map_err(|status| refused(Some(&ns), status))?;
        Ok(Call(Arc::new(CallState {
            ns,
            op,
            started,
            proxy_bytes: self.request_bytes.clone(),
            request_bytes: AtomicUsize::new(0),
            body_timeout: self.request_body_timeout,
            response: parking_lot::Mutex::new(None),
            deadline: grpc_timeout(routing.timeout),
            parent: crate::telemetry::parent_context(headers),
        })))
    }

    /// The namespace the request names; NOT_FOUND lists only the namespaces `caller` may
    /// use.
    fn lookup(&self, value: Option<&HeaderValue>, caller: &crate::auth::Caller) -> Result<Arc<Namespace>, Status> {
        let Some(value) = value else {
            let err = BackendError::invalid(
                NAMESPACE_HEADER,
                format!("metadata {NAMESPACE_HEADER} is required to choose a namespace"),
            );
            return Err(to_status_with_reason(&err, ErrorReason::UnknownNamespace, None));
        };
        self.namespaces.get(value.as_bytes()).cloned().ok_or_else(|| {
            let name = String::from_utf8_lossy(value.as_bytes());
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
