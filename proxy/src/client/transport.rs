//! How a [`super::PrismClient`] reaches its server:
//! - tonic's `Channel`, the default: reconnects, TLS;
//! - one HTTP/2 connection driven directly with `h2`. A call runs in the caller's task:
//!   no request-buffer task, no dispatch channel and no task per request (hyper's client
//!   spawns one to await each response). It is meant for the load generator, where client
//!   cost shows in the results. It does not reconnect: once the connection breaks, every
//!   later call fails.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures::future::BoxFuture;
use http::HeaderMap;
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tonic::transport::Channel;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// hyper's client defaults, which tonic's channel uses: windows large enough that small
/// calls never wait for WINDOW_UPDATE frames.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;
const MAX_HEADER_LIST: u32 = 16 * 1024;
const MAX_SEND_BUFFER: usize = 1024 * 1024;

#[derive(Clone, Debug)]
pub enum Transport {
    Channel(Channel),
    Direct(Direct),
}

/// One `h2` connection; the task driving it ends when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct Direct {
    sender: h2::client::SendRequest<Bytes>,
}

/// Why a unary call got no whole answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum UnaryError {
    #[error("the reply is larger than {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Transport(Error),
}

impl From<Error> for UnaryError {
    fn from(e: Error) -> UnaryError {
        UnaryError::Transport(e)
    }
}

impl From<h2::Error> for UnaryError {
    fn from(e: h2::Error) -> UnaryError {
        UnaryError::Transport(e.into())
    }
}

impl From<tonic::transport::Error> for UnaryError {
    fn from(e: tonic::transport::Error) -> UnaryError {
        UnaryError::Transport(e.into())
    }
}

/// A whole unary answer.
pub(super) struct Reply {
    pub status: http::StatusCode,
    pub headers: HeaderMap,
    pub data: Bytes,
    pub trailers: Option<HeaderMap>,
}

impl Transport {
    /// Opens one plain-text HTTP/2 connection to `uri` (`http://host:port`).
    pub async fn direct(uri: &http::Uri) -> Result<Transport, Error> {
        let authority = uri.authority().ok_or("the endpoint has no host:port")?;
        let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .max_send_buffer_size(MAX_SEND_BUFFER)
            .enable_push(false)
            .handshake(stream)
            .await?;
        // Ends when the last sender is dropped (h2 wakes the connection then).
        tokio::spawn(connection);
        Ok(Transport::Direct(Direct { sender }))
    }

    /// Sends `request` with `body` as its whole body and reads the whole answer, at most
    /// `limit` bytes of it.
    pub(super) async fn unary(
        &self,
        request: http::Request<()>,
        body: Bytes,
        limit: usize,
    ) -> Result<Reply, UnaryError> {
        match self {
            Transport::Channel(channel) => {
                let request = request.map(|()| tonic::body::Body::new(http_body_util::Full::new(body)));
                let mut channel = channel.clone();
                let ready = tower::ServiceExt::ready(&mut channel).await?;
                let (parts, body) = tower::Service::call(ready, request).await?.into_parts();
                whole(parts, body, limit).await
            }
            Transport::Direct(direct) => {
                let mut sender = direct.sender.clone().ready().await?;
                let (response, mut stream) = sender.send_request(request, false)?;
                // The server may answer (and close the stream) before the body goes out,
                // a trailers-only error for one: then the answer, not this, is the result
                // (hyper's client does the same).
                let _ = stream.send_data(body, true);
                let (parts, body) = response.await?.into_parts();
                whole(parts, Received(body), limit).await
            }
        }
    }
}

/// The whole answer of `parts` and `body`, at most `limit` bytes of body (a one-frame
/// body is kept as it came, not copied).
async fn whole<B>(parts: http::response::Parts, body: B, limit: usize) -> Result<Reply, UnaryError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Error>,
{
    let collected =
        http_body_util::Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| match e.downcast_ref::<http_body_util::LengthLimitError>() {
                Some(_) => UnaryError::TooLarge(limit),
                None => UnaryError::Transport(e),
            })?;
    let trailers = collected.trailers().cloned();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        data: collected.to_bytes(),
        trailers,
    })
}

impl tower::Service<http::Request<tonic::body::Body>> for Transport {
    type Response = http::Response<tonic::body::Body>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Transport::Channel(c) => tower::Service::poll_ready(c, cx).map_err(Into::into),
            Transport::Direct(d) => d.sender.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        match self {
            Transport::Channel(c) => {
                let response = tower::Service::call(c, request);
                Box::pin(async move { response.await.map_err(Into::into) })
            }
            Transport::Direct(d) => {
                let mut sender = d.sender.clone();
                Box::pin(async move {
                    let (parts, body) = request.into_parts();
                    let end = body.is_end_stream();
                    let (response, stream) = sender.send_request(http::Request::from_parts(parts, ()), end)?;
                    if !end {
                        tokio::spawn(send_body(body, stream));
                    }
                    let response = response.await?;
                    Ok(response.map(|body| tonic::body::Body::new(Received(body))))
                })
            }
        }
    }
}

/// Streams a request body onto its HTTP/2 stream (the generated clients' path).
async fn send_body(mut body: tonic::body::Body, mut stream: h2::SendStream<Bytes>) {
    while let Some(frame) = body.frame().await {
        let sent = match frame.map(Frame::into_data) {
            Ok(Ok(data)) => stream.send_data(data, false),
            Ok(Err(frame)) => match frame.into_trailers() {
                Ok(trailers) => {
                    let _ = stream.send_trailers(trailers);
                    return;
                }
                Err(_) => Ok(()),
            },
            Err(_) => {
                stream.send_reset(h2::Reason::CANCEL);
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
    let _ = stream.send_data(Bytes::new(), true);
}

/// A response body read from its HTTP/2 stream, giving back flow-control capacity as
/// it is read.
struct Received(h2::RecvStream);

impl Body for Received {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let stream = &mut self.0;
        match stream.poll_data(cx) {
            Poll::Ready(Some(Ok(data))) => {
                let _ = stream.flow_control().release_capacity(data.remaining());
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {}
            Poll::Pending => return Poll::Pending,
        }
        match stream.poll_trailers(cx) {
            Poll::Ready(Ok(Some(trailers))) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }
}
