//! The gRPC listener's connection bound (`transport.max_connections`): each accepted
//! connection holds a place until it closes; one accepted with every place taken is
//! closed at once (and counted), so no number of clients can make the proxy hold more
//! connection state than configured.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::Connected;

use crate::metrics::Metrics;

/// Accepted connections from `incoming`, at most `max` open at once.
pub(crate) struct Bounded<I> {
    incoming: I,
    places: Arc<Semaphore>,
    max: u32,
    metrics: Metrics,
}

impl<I> Bounded<I> {
    pub(crate) fn new(incoming: I, max: u32, metrics: Metrics) -> Bounded<I> {
        Bounded {
            incoming,
            places: Arc::new(Semaphore::new(max as usize)),
            max,
            metrics,
        }
    }
}

impl<I, IO> Stream for Bounded<I>
where
    I: Stream<Item = io::Result<IO>> + Unpin,
{
    type Item = io::Result<Counted<IO>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let io = match ready!(Pin::new(&mut self.incoming).poll_next(cx)) {
                Some(Ok(io)) => io,
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => return Poll::Ready(None),
            };
            match self.places.clone().try_acquire_owned() {
                Ok(place) => {
                    self.metrics.connections.inc();
                    return Poll::Ready(Some(Ok(Counted {
                        io,
                        _place: place,
                        open: self.metrics.connections.clone(),
                    })));
                }
                Err(_) => {
                    self.metrics.connections_refused.inc();
                    tracing::debug!(
                        max_connections = self.max,
                        "connection closed at accept: transport.max_connections are open"
                    );
                    drop(io);
                }
            }
        }
    }
}

/// A connection holding its place; the place (and the gauge) is given back on drop.
pub(crate) struct Counted<IO> {
    io: IO,
    _place: OwnedSemaphorePermit,
    open: prometheus::IntGauge,
}

impl<IO> Drop for Counted<IO> {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl<IO: Connected> Connected for Counted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> IO::ConnectInfo {
        self.io.connect_info()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
