//! The gRPC listener's connection bounds. Each accepted connection holds one of
//! `transport.max_connections` places until it closes; one accepted with every place taken
//! is closed at once (and counted), so no number of clients can make the proxy hold more
//! connection state than configured. A connection with no call open for
//! `transport.max_connection_idle` is closed (gRPC's MAX_CONNECTION_IDLE), so idle
//! clients cannot keep the places forever; keepalive PINGs do not count as calls.
//!
//! hyper does not expose a connection's open streams, so calls are counted by the
//! connection's service ([`Connection::call`], held until the response body ends) and the
//! idle timer runs in the connection's reads: when it fires with no call open, the read
//! side reports end of stream and hyper closes the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::budget::{Budget, Taken};
use crate::metrics::Metrics;

/// Accepted connections from `incoming`, at most `max` open at once.
pub(crate) struct Bounded<I> {
    incoming: I,
    places: Arc<Budget>,
    max: u32,
    idle: Duration,
    metrics: Metrics,
}

impl<I> Bounded<I> {
    /// At most `max` connections, each closed once it has had no call open for `idle`.
    pub(crate) fn new(incoming: I, max: u32, idle: Duration, metrics: Metrics) -> Bounded<I> {
        Bounded {
            incoming,
            places: Budget::new(max as usize),
            max,
            idle,
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
            match self.places.try_hold(1) {
                Some(place) => {
                    self.metrics.connections.inc();
                    return Poll::Ready(Some(Ok(Counted {
                        io,
                        _place: place,
                        open: self.metrics.connections.clone(),
                        idle_closed: self.metrics.connections_idle_closed.clone(),
                        connection: Connection(Arc::new(Calls::new())),
                        idle: self.idle,
                        timer: Box::pin(tokio::time::sleep(self.idle)),
                        timer_waker: None,
                        closed: false,
                    })));
                }
                None => {
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
    _place: Taken,
    open: prometheus::IntGauge,
    idle_closed: prometheus::IntCounter,
    connection: Connection,
    idle: Duration,
    /// Fires when the connection may have been idle for `idle`; checked, then re-armed.
    timer: Pin<Box<Sleep>>,
    /// The waker `timer` was last polled with: while reads are pending with the same
    /// waker and the timer has not fired, it need not be polled again (a read pending
    /// on every request, polling the timer cost a few hundred instructions each time).
    timer_waker: Option<std::task::Waker>,
    /// The idle timeout ended the connection: every later read is end of stream.
    closed: bool,
}

impl<IO> Counted<IO> {
    /// Whether the connection has been idle for its timeout; if not, the timer is re-armed
    /// for the earliest moment it could be.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        let registered = self.timer_waker.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if registered && !self.timer.is_elapsed() {
            return false;
        }
        self.timer_waker = Some(cx.waker().clone());
        while self.timer.as_mut().poll(cx).is_ready() {
            let next = match self.connection.0.idle_since() {
                Some(since) if since + self.idle <= Instant::now() => return true,
                Some(since) => since + self.idle,
                None => Instant::now() + self.idle,
            };
            self.timer.as_mut().reset(next);
        }
        false
    }
}

/// A connection's calls, as its service sees them.
#[derive(Clone)]
pub(crate) struct Connection(Arc<Calls>);

impl Connection {
    /// Marks a call open until the returned guard is dropped.
    pub(crate) fn call(&self) -> OpenCall {
        self.0.open.fetch_add(1, Ordering::AcqRel);
        OpenCall(self.0.clone())
    }
}

struct Calls {
    open: AtomicUsize,
    /// When the last call ended, in nanoseconds after `born`.
    last_end: AtomicU64,
    born: Instant,
}

impl Calls {
    fn new() -> Calls {
        Calls {
            open: AtomicUsize::new(0),
            last_end: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    /// Since when no call has been open; `None` while one is.
    fn idle_since(&self) -> Option<Instant> {
        if self.open.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(self.born + Duration::from_nanos(self.last_end.load(Ordering::Acquire)))
    }
}

/// An open call on a connection; dropping it ends the call.
pub(crate) struct OpenCall(Arc<Calls>);

impl Drop for OpenCall {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.born.elapsed().as_nanos()).unwrap_or(u64::MAX);
        // Stored before the count drops, so a timer seeing no call open sees this end.
        self.0.last_end.fetch_max(now, Ordering::AcqRel);
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<IO> Drop for Counted<IO> {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl<IO> Counted<IO> {
    /// The connection's calls, for its service to count.
    pub(crate) fn connection(&self) -> Connection {
        self.connection.clone()
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.closed {
            return Poll::Ready(Ok(()));
        }
        if let Poll::Ready(read) = Pin::new(&mut self.io).poll_read(cx, buf) {
            return Poll::Ready(read);
        }
        if self.poll_idle(cx) {
            self.closed = true;
            self.idle_closed.inc();
            tracing::debug!(idle = ?self.idle, "connection closed: no call open for transport.max_connection_idle");
            return Poll::Ready(Ok(()));
        }
        Poll::Pending
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
