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

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use futures::future::BoxFuture;
use http_body::Frame;
use hyper::body::Incoming;
use tonic::Status;
use tonic::body::Body;

use super::connections::{Connection, OpenCall};
use super::namespace::{Call, ResponseBytes, Router};
use super::routes::{Answer, Prism, Route, Routes};
use crate::status::to_status;
use crate::{BackendError, Operation};

/// Length of the gRPC message prefix: a compression flag and a big-endian u32 length.
const PREFIX: usize = 5;

/// What the services of every connection share: the namespaces and the routes.
pub(crate) struct Gateway {
    pub(crate) router: Arc<Router>,
    pub(crate) routes: Routes,
}

/// One connection's service: each request routed by its path, and admitted first when
/// it is a Prism operation. Its calls count as the connection's open calls (for the idle
/// timeout) until their responses end.
#[derive(Clone)]
pub(crate) struct Admission {
    gateway: Arc<Gateway>,
    connection: Connection,
}

impl Admission {
    pub(crate) fn new(gateway: Arc<Gateway>, connection: Connection) -> Admission {
        Admission { gateway, connection }
    }
}

impl hyper::service::Service<http::Request<Incoming>> for Admission {
    type Response = http::Response<Holding>;
    type Error = Infallible;
    type Future = Answering;

    fn call(&self, request: http::Request<Incoming>) -> Answering {
        let open = self.connection.call();
        let gateway = &self.gateway;
        let route = gateway.routes.route(request.uri().path());
        let Route::Operation(op, service) = route else {
            return Answering::Plain {
                answer: gateway.routes.plain(route, request),
                open: Some(open),
            };
        };
        let started = Instant::now();
        match gateway.router.admit_now(request.headers(), op, started) {
            Some(Ok(call)) => gateway.serve(call, request, service, open),
            Some(Err(status)) => Answering::Ready(Some(held_until_end(status.into_http(), open, None))),
            // Authentication that waits (a token to check): the whole admission boxed.
            None => Answering::Admitting(Box::pin(admit(gateway.clone(), request, op, service, open, started))),
        }
    }
}

impl Gateway {
    /// `request`, admitted as `call`, served by `service` with its body capped.
    fn serve(&self, call: Call, request: http::Request<Incoming>, service: Prism, open: OpenCall) -> Answering {
        let request = request.map(|body| Capped {
            body,
            call: call.clone(),
            deadline: None,
            partial: BytesMut::new(),
            done: false,
        });
        Answering::Served {
            answer: self.routes.prism(service, request),
            call,
            open: Some(open),
        }
    }
}

/// What a connection's service answers a request with. A concrete future rather than a
/// boxed `async` block: admission without waiting (`auth: none`) is done by the time
/// the request's future exists, and the one left to wait for is the service's answer.
pub(crate) enum Answering {
    /// A service's answer to a request that was not admitted (health, reflection, ...).
    Plain { answer: Answer, open: Option<OpenCall> },
    /// The answer to an admitted call; its response's share of the byte budget is taken
    /// from the call when it comes.
    Served {
        answer: Answer,
        call: Call,
        open: Option<OpenCall>,
    },
    /// An answer already known (a refusal).
    Ready(Option<http::Response<Holding>>),
    /// Admission that waits for authentication, then the answer.
    Admitting(BoxFuture<'static, http::Response<Holding>>),
}

impl Future for Answering {
    type Output = Result<http::Response<Holding>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match self.get_mut() {
            Answering::Plain { answer, open } => {
                let Ok(response) = ready!(answer.as_mut().poll(cx));
                open.take().map(|open| held_until_end(response, open, None))
            }
            Answering::Served { answer, call, open } => {
                let Ok(response) = ready!(super::namespace::serving(call, || answer.as_mut().poll(cx)));
                open.take()
                    .map(|open| held_until_end(response, open, call.take_response_bytes()))
            }
            Answering::Ready(response) => response.take(),
            Answering::Admitting(admitting) => Some(ready!(admitting.as_mut().poll(cx))),
        };
        // Polled again after it answered: a bug in the caller, answered as one.
        Poll::Ready(Ok(response.unwrap_or_else(|| {
            http::Response::new(Holding {
                body: Status::internal("an answer was polled twice")
                    .into_http::<Body>()
                    .into_body(),
                _open: None,
                _bytes: None,
            })
        })))
    }
}

/// `response` with `open` and its `bytes`' share of the namespace's budget held until
/// its body has been sent (or dropped).
fn held_until_end(
    response: http::Response<Body>,
    open: OpenCall,
    bytes: Option<ResponseBytes>,
) -> http::Response<Holding> {
    response.map(|body| Holding {
        body,
        _open: Some(open),
        _bytes: bytes,
    })
}

/// A response body holding its call open and its bytes paid for.
pub(crate) struct Holding {
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

/// Admits `request` for `op` after authentication that waits, then serves it (the
/// boxed path of [`Answering::Admitting`]).
async fn admit(
    gateway: Arc<Gateway>,
    request: http::Request<Incoming>,
    op: Operation,
    service: Prism,
    open: OpenCall,
    started: Instant,
) -> http::Response<Holding> {
    let call = match gateway.router.admit(request.headers(), op, started).await {
        Ok(call) => call,
        Err(status) => return held_until_end(status.into_http(), open, None),
    };
    match gateway.serve(call, request, service, open).await {
        Ok(response) => response,
    }
}

/// A request body read under its namespace's `max_message_bytes`, the proxy's
/// `transport.max_buffered_request_bytes` and `transport.request_body_timeout`. The
/// message is handed on whole: the decoder, which reserves room for the length a message
/// declares, only sees a length once that many bytes have arrived and been paid for.
struct Capped {
    body: Incoming,
    /// The admitted call, which holds the message's bytes in the budgets until it is done.
    call: Call,
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
        self.done = true;
        Ok(Some(message))
    }

    fn check_declared(&self, declared: usize) -> Result<(), Status> {
        if declared > self.call.limits.max_message_bytes as usize {
            return Err(self.refuse(format!("the request message declares {declared} bytes")));
        }
        Ok(())
    }

    /// Takes `n` more bytes from the namespace's and the proxy's budgets.
    fn pay(&mut self, n: usize) -> Result<(), Status> {
        self.call
            .pay_request_bytes(n)
            .map_err(|err| self.answer(to_status(&err, Some(&self.call.name))))
    }

    fn refuse(&self, what: String) -> Status {
        let limit = self.call.limits.max_message_bytes;
        let err = BackendError::InvalidArgument {
            field: "(message)".into(),
            message: format!("{what}, over the limit max_message_bytes={limit}"),
            limit: Some(format!("max_message_bytes={limit}")),
        };
        self.answer(to_status(&err, Some(&self.call.name)))
    }

    /// `status`, counted in `/metrics` (the handler never runs).
    fn answer(&self, status: Status) -> Status {
        self.call
            .metrics
            .record(self.call.op(), self.call.started().elapsed(), status.code());
        status
    }
}

/// A failure reading the request off the connection, as the status tonic would give it
/// (a reset stream is CANCELLED, ...).
fn body_error(e: hyper::Error) -> Status {
    Status::from_error(Box::new(e))
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
                    other => Poll::Ready(other.map(|frame| frame.map_err(body_error))),
                };
            }
            if let Some(deadline) = &mut this.deadline
                && deadline.as_mut().poll(cx).is_ready()
            {
                let err = BackendError::DeadlineExceeded(format!(
                    "the request message did not arrive within transport.request_body_timeout ({:?})",
                    this.call.body_timeout()
                ));
                this.done = true;
                return Poll::Ready(Some(Err(this.answer(to_status(&err, Some(&this.call.name))))));
            }
            let frame = match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(body_error(e)))),
                None => return Poll::Ready(None),
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            match this.take(data) {
                Ok(Some(message)) => return Poll::Ready(Some(Ok(Frame::data(message)))),
                Ok(None) => {
                    if this.deadline.is_none() {
                        this.deadline = Some(Box::pin(tokio::time::sleep(this.call.body_timeout())));
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
