//! What happens to a gRPC request before its body is read. From the headers alone the
//! caller is authenticated, the namespace looked up and a place there taken
//! (`max_in_flight`, or `max_subscriptions` for a subscription), so a caller who may not
//! send has no byte of its body buffered, and a flood in one namespace waits on that
//! namespace's limit only. The body is then read under the namespace's
//! `max_message_bytes`: a message declaring more is refused from its 5-byte gRPC prefix,
//! with INVALID_ARGUMENT naming the limit. The bytes that arrive are paid for from the
//! proxy-wide `transport.max_buffered_request_bytes` until the call is done (past it:
//! RESOURCE_EXHAUSTED), so the requests of all clients together hold at most that; a
//! message that has not arrived within `transport.request_body_timeout` is ended.
//!
//! Requests to other services (health, reflection) pass through untouched.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures::future::BoxFuture;
use http_body::Frame;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tonic::body::Body;
use tonic::metadata::MetadataMap;

use super::connections::{Connection, OpenCall};
use super::namespace::{Namespace, ResponseBytes, Router};
use crate::status::to_status;
use crate::{BackendError, Operation};

/// Length of the gRPC message prefix: a compression flag and a big-endian u32 length.
const PREFIX: usize = 5;

/// The layer admitting requests through `router`.
#[derive(Clone)]
pub(crate) struct AdmissionLayer {
    router: Arc<Router>,
    operations: Arc<HashMap<String, Operation>>,
}

impl AdmissionLayer {
    pub(crate) fn new(router: Arc<Router>) -> AdmissionLayer {
        let operations = Operation::ALL.into_iter().map(|op| (op.grpc_path(), op)).collect();
        AdmissionLayer {
            router,
            operations: Arc::new(operations),
        }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admission<S>;

    fn layer(&self, inner: S) -> Admission<S> {
        Admission {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AdmissionLayer`] wraps around the gRPC routes.
#[derive(Clone)]
pub(crate) struct Admission<S> {
    inner: S,
    layer: AdmissionLayer,
}

impl<S> tower::Service<http::Request<Body>> for Admission<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<http::Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        // The call is open on its connection (for the idle timeout) until its response ends.
        let open = Connection::of(&request).map(Connection::call);
        let Some(&op) = self.layer.operations.get(request.uri().path()) else {
            let response = self.inner.call(request);
            return Box::pin(async move { Ok(held_until_end(response.await?, open)) });
        };
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let router = self.layer.router.clone();
        Box::pin(async move {
            let response = admit(&mut inner, request, op, router).await?;
            Ok(held_until_end(response, open))
        })
    }
}

/// `response` with `open` and its bytes' share of the namespace's budget held until its
/// body has been sent (or dropped).
fn held_until_end(mut response: http::Response<Body>, open: Option<OpenCall>) -> http::Response<Body> {
    let bytes = response.extensions_mut().remove::<ResponseBytes>();
    if open.is_none() && bytes.is_none() {
        return response;
    }
    response.map(|body| {
        Body::new(Holding {
            body,
            _open: open,
            _bytes: bytes,
        })
    })
}

/// A response body holding its call open and its bytes paid for.
struct Holding {
    body: Body,
    _open: Option<OpenCall>,
    _bytes: Option<ResponseBytes>,
}

impl http_body::Body for Holding {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Admits `request` for `op` from its headers, then hands it to `inner` with its body
/// capped.
async fn admit<S>(
    inner: &mut S,
    mut request: http::Request<Body>,
    op: Operation,
    router: Arc<Router>,
) -> Result<http::Response<Body>, S::Error>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>,
{
    let started = Instant::now();
    let metadata = MetadataMap::from_headers(std::mem::take(request.headers_mut()));
    let admitted = router.admit(&metadata, op, started).await;
    *request.headers_mut() = metadata.into_headers();
    let call = match admitted {
        Ok(call) => call,
        Err(status) => return Ok(status.into_http()),
    };
    let (parts, body) = request.into_parts();
    let body = Body::new(Capped {
        body,
        ns: call.namespace().clone(),
        budget: router.request_bytes.clone(),
        paid: Paid::default(),
        charge: call.buffered.clone(),
        op,
        started,
        timeout: router.request_body_timeout,
        deadline: None,
        partial: BytesMut::new(),
        done: false,
    });
    let mut request = http::Request::from_parts(parts, body);
    request.extensions_mut().insert(call);
    inner.call(request).await
}

/// A request body read under its namespace's `max_message_bytes`, the proxy's
/// `transport.max_buffered_request_bytes` and `transport.request_body_timeout`. The
/// message is handed on whole: the decoder, which reserves room for the length a message
/// declares, only sees a length once that many bytes have arrived and been paid for.
struct Capped {
    body: Body,
    ns: Arc<Namespace>,
    budget: Arc<Semaphore>,
    /// What the bytes held so far took from the namespace's and the proxy's budgets.
    paid: Paid,
    /// Where the message's share of the budgets is kept once whole, for as long as the
    /// call lives.
    charge: Arc<OnceLock<Paid>>,
    op: Operation,
    started: Instant,
    timeout: std::time::Duration,
    /// Armed when a message does not arrive in its first frame.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The message so far, when it came in more than one frame.
    partial: BytesMut,
    /// The whole message was handed on.
    done: bool,
}

impl Capped {
    /// Takes `data` into the message: the whole message when it is complete, `None` while
    /// more is to come.
    fn take(&mut self, data: Bytes) -> Result<Option<Bytes>, Status> {
        self.pay(data.len())?;
        // A message in one frame, the usual case, is handed on without a copy. Otherwise
        // the message grows with what arrives, never reserved from the declared length: a
        // client declaring 16 MB and sending 5 bytes holds 5 bytes.
        let (declared, have) = if self.partial.is_empty() {
            (declared(&data), data.len())
        } else {
            self.partial.extend_from_slice(&data);
            (declared(&self.partial), self.partial.len())
        };
        if let Some(declared) = declared {
            self.check_declared(declared)?;
            if have > PREFIX + declared {
                return Err(self.refuse("the request holds more than one message".into()));
            }
        }
        if declared.is_none_or(|n| have < PREFIX + n) {
            if self.partial.is_empty() {
                self.partial.extend_from_slice(&data);
            }
            return Ok(None);
        }
        let message = if self.partial.is_empty() {
            data
        } else {
            self.partial.split().freeze()
        };
        let _ = self.charge.set(std::mem::take(&mut self.paid));
        self.done = true;
        Ok(Some(message))
    }

    fn check_declared(&self, declared: usize) -> Result<(), Status> {
        if declared > self.ns.limits.max_message_bytes as usize {
            return Err(self.refuse(format!("the request message declares {declared} bytes")));
        }
        Ok(())
    }

    /// Takes `n` more bytes from the namespace's budget (`limits.max_buffered_bytes`), so
    /// one namespace cannot take the proxy's, then from the proxy's.
    fn pay(&mut self, n: usize) -> Result<(), Status> {
        let Ok(n) = u32::try_from(n) else {
            return Err(self.refuse(format!("a frame of {n} bytes")));
        };
        let overloaded = |what: String| BackendError::Overloaded(format!("{what}; retry shortly"));
        let Ok(ns) = self.ns.buffered.clone().try_acquire_many_owned(n) else {
            let err = overloaded(format!(
                "namespace {} holds its limit of request bytes (max_buffered_bytes={})",
                self.ns.name, self.ns.limits.max_buffered_bytes
            ));
            return Err(self.answer(to_status(&err, Some(&self.ns.name))));
        };
        let Ok(proxy) = self.budget.clone().try_acquire_many_owned(n) else {
            let err =
                overloaded("the proxy holds its limit of request bytes (transport.max_buffered_request_bytes)".into());
            return Err(self.answer(to_status(&err, Some(&self.ns.name))));
        };
        self.paid.add(ns, proxy);
        Ok(())
    }

    fn refuse(&self, what: String) -> Status {
        let limit = self.ns.limits.max_message_bytes;
        let err = BackendError::InvalidArgument {
            field: "(message)".into(),
            message: format!("{what}, over the limit max_message_bytes={limit}"),
            limit: Some(format!("max_message_bytes={limit}")),
        };
        self.answer(to_status(&err, Some(&self.ns.name)))
    }

    /// `status`, counted in `/metrics` (the handler never runs).
    fn answer(&self, status: Status) -> Status {
        self.ns.metrics.record(self.op, self.started.elapsed(), status.code());
        status
    }
}

/// Bytes taken from the namespace's budget and from the proxy's (permits of different
/// semaphores cannot be merged).
#[derive(Default)]
pub(crate) struct Paid {
    ns: Option<OwnedSemaphorePermit>,
    proxy: Option<OwnedSemaphorePermit>,
}

impl Paid {
    fn add(&mut self, ns: OwnedSemaphorePermit, proxy: OwnedSemaphorePermit) {
        for (held, more) in [(&mut self.ns, ns), (&mut self.proxy, proxy)] {
            match held {
                Some(held) => held.merge(more),
                None => *held = Some(more),
            }
        }
    }
}

/// The length a message's 5-byte prefix declares.
fn declared(bytes: &[u8]) -> Option<usize> {
    let mut prefix = bytes.get(1..PREFIX)?;
    Some(prefix.get_u32() as usize)
}

impl http_body::Body for Capped {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                    Some(Ok(frame)) if frame.data_ref().is_some_and(|d| !d.is_empty()) => {
                        Poll::Ready(Some(Err(this.refuse("the request holds more than one message".into()))))
                    }
                    other => Poll::Ready(other),
                };
            }
            if let Some(deadline) = &mut this.deadline
                && deadline.as_mut().poll(cx).is_ready()
            {
                let err = BackendError::DeadlineExceeded(format!(
                    "the request message did not arrive within transport.request_body_timeout ({:?})",
                    this.timeout
                ));
                this.done = true;
                return Poll::Ready(Some(Err(this.answer(to_status(&err, Some(&this.ns.name))))));
            }
            let frame = match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                other => return Poll::Ready(other),
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            match this.take(data) {
                Ok(Some(message)) => return Poll::Ready(Some(Ok(Frame::data(message)))),
                Ok(None) => {
                    if this.deadline.is_none() {
                        this.deadline = Some(Box::pin(tokio::time::sleep(this.timeout)));
                    }
                }
                Err(status) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(status)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.body.is_end_stream()
    }
}
