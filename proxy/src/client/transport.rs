//! How a [`super::PrismClient`] reaches its server:
//! - tonic's `Channel`, the default: reconnects, TLS;
//! - one HTTP/2 connection driven directly. There is no request-buffer task between the
//!   caller and the connection, so this saves a task hop per call. It is meant for the load
//!   generator, where client cost shows in the results. It does not reconnect: once the
//!   connection breaks, every later call fails.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tonic::transport::Channel;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone, Debug)]
pub enum Transport {
    Channel(Channel),
    Direct(hyper::client::conn::http2::SendRequest<tonic::body::Body>),
}

impl Transport {
    /// Opens one plain-text HTTP/2 connection to `uri` (`http://host:port`).
    pub async fn direct(uri: &http::Uri) -> Result<Transport, Error> {
        let authority = uri.authority().ok_or("the endpoint has no host:port")?;
        let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(connection);
        Ok(Transport::Direct(sender))
    }
}

impl tower::Service<http::Request<tonic::body::Body>> for Transport {
    type Response = http::Response<tonic::body::Body>;
    type Error = Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match self {
            Transport::Channel(c) => tower::Service::poll_ready(c, cx).map_err(Into::into),
            Transport::Direct(d) => d.poll_ready(cx).map_err(Into::into),
        }
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        match self {
            Transport::Channel(c) => {
                let response = tower::Service::call(c, request);
                Box::pin(async move { response.await.map_err(Into::into) })
            }
            Transport::Direct(d) => {
                let response = d.send_request(request);
                Box::pin(async move { Ok(response.await?.map(tonic::body::Body::new)) })
            }
        }
    }
}
