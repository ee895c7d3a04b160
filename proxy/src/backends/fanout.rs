//! Every subscription of one driver on one shared backend connection (Redis SUBSCRIBE,
//! PostgreSQL LISTEN): a channel is listened to on the server once, however many
//! subscribers it has, and dropped when its last one goes. A task reads the connection and
//! hands each message to the channel's subscribers without ever waiting on one. When the
//! connection is lost, every subscription ends (its subscriber is told to subscribe again,
//! by `LiveSubscriptions`) and the next subscribe opens a new connection.
//!
//! A subscriber joins at a barrier: a mark published on the connection's own barrier
//! channel after it was added. The server delivers messages to the connection in the
//! order it handled their publishes, so what the reader reads before the mark was
//! published before the subscribe and is not the new subscriber's: without the barrier a
//! second subscriber of a channel got messages still in flight from before it subscribed
//! (the pubsub model check found it).
//!
//! A driver supplies the connection: [`Listener`] for its commands, and the stream of
//! `(channel, payload)` it reads.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::driver::bounded;
use crate::interfaces::Message;
use crate::{BackendError, BackendResult};

/// Messages waiting for one subscriber between the connection and the proxy's own
/// per-subscription buffer, which reads eagerly; past it the subscriber is ended.
const HANDOFF: usize = 1024;

/// The command half of a shared subscription connection.
pub(crate) trait Listener: Clone + Send + Sync + 'static {
    /// Starts receiving `channel`; confirmed by the server when this returns.
    fn listen(&self, channel: &str) -> BoxFuture<'_, BackendResult<()>>;
    /// Stops receiving `channel`.
    fn unlisten(&self, channel: &str) -> BoxFuture<'_, BackendResult<()>>;
    /// Publishes `mark` on `channel` (a barrier), ordered after every publish the server
    /// finished before.
    fn mark(&self, channel: &str, mark: u64) -> BoxFuture<'_, BackendResult<()>>;
}

/// What a connection reads: `(channel, payload)`, ending when the connection does.
pub(crate) type Incoming = BoxStream<'static, (String, Bytes)>;

/// Opens a shared connection.
pub(crate) type Connect<L> =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = BackendResult<(L, Incoming)>> + Send>> + Send + Sync>;

/// Makes a message of a payload read on `topic`'s channel.
pub(crate) type Decode = fn(&str, Bytes) -> Result<Message, BackendError>;

type Subscribers = Arc<Mutex<Routes>>;

/// Where the reader hands what it reads.
#[derive(Default)]
struct Routes {
    channels: HashMap<String, Channel>,
    /// Subscribers waiting for their barrier mark, by id: what is read meanwhile is not
    /// theirs. The wake-up tells `subscribe` the mark came.
    joining: HashMap<u64, oneshot::Sender<()>>,
}

/// One server channel: its topic and the subscribers it feeds.
struct Channel {
    topic: String,
    subscribers: HashMap<u64, mpsc::Sender<BackendResult<Message>>>,
}

/// The shared connection while it lives.
struct Shared<L> {
    listener: L,
    /// The connection's barrier channel, unique to it.
    barrier: String,
    /// Cancelled when the reading task ends (the connection was lost).
    lost: CancellationToken,
}

/// A driver's subscriptions on its one shared connection.
pub(crate) struct Fanout<L: Listener> {
    backend: &'static str,
    timeout: Duration,
    connect: Connect<L>,
    decode: Decode,
    /// Locked while a connection is opened or a channel listened to or dropped, so
    /// concurrent first subscribes share one connection and a channel's listen and
    /// unlisten never cross.
    shared: Arc<tokio::sync::Mutex<Option<Shared<L>>>>,
    /// The subscribers of the connection that lives now (emptied when it is lost).
    subscribers: Subscribers,
    next_id: AtomicU64,
}

impl<L: Listener> Fanout<L> {
    pub(crate) fn new(backend: &'static str, timeout: Duration, connect: Connect<L>, decode: Decode) -> Fanout<L> {
        Fanout {
            backend,
            timeout,
            connect,
            decode,
            shared: Arc::default(),
            subscribers: Arc::default(),
            next_id: AtomicU64::new(0),
        }
    }

    /// The messages on `channel` (for `topic`) from now on: live once this returns.
    pub(crate) async fn subscribe(
        &self,
        channel: String,
        topic: String,
    ) -> Result<BoxStream<'static, BackendResult<Message>>, BackendError> {
        let mut shared = self.shared.lock().await;
        let conn = match shared.take() {
            Some(conn) if !conn.lost.is_cancelled() => conn,
            _ => self.open().await?,
        };
        let (listener, barrier) = (conn.listener.clone(), conn.barrier.clone());
        *shared = Some(conn);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(HANDOFF);
        let (wake, woken) = oneshot::channel();
        let first = {
            let mut routes = self.subscribers.lock();
            let entry = routes.channels.entry(channel.clone()).or_insert_with(|| Channel {
                topic,
                subscribers: HashMap::new(),
            });
            entry.subscribers.insert(id, tx);
            let first = entry.subscribers.len() == 1;
            routes.joining.insert(id, wake);
            first
        };
        // From here a failure drops `leave`, which takes the subscriber out again (and
        // the channel off the server with its last one).
        let leave = Leave {
            shared: self.shared.clone(),
            listener: listener.clone(),
            subscribers: self.subscribers.clone(),
            channel: channel.clone(),
            id,
        };
        if first {
            bounded(self.backend, self.timeout, listener.listen(&channel)).await?;
        }
        bounded(self.backend, self.timeout, async {
            listener.mark(&barrier, id).await?;
            woken.await.map_err(|_| {
                BackendError::Unavailable(format!("the {} subscription connection was lost", self.backend))
            })
        })
        .await?;
        let messages = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |m| {
            let _ = &leave;
            m
        });
        Ok(messages.boxed())
    }

    async fn open(&self) -> Result<Shared<L>, BackendError> {
        let (listener, incoming) = bounded(self.backend, self.timeout, (self.connect)()).await?;
        let barrier = barrier_channel();
        bounded(self.backend, self.timeout, listener.listen(&barrier)).await?;
        let lost = CancellationToken::new();
        tokio::spawn(read(
            incoming,
            self.decode,
            self.subscribers.clone(),
            barrier.clone(),
            lost.clone(),
        ));
        Ok(Shared {
            listener,
            barrier,
            lost,
        })
    }

    /// How many of this driver's subscribers listen on `channel`, when its connection
    /// listens to it (the server counts that connection once).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // PostgreSQL's NOTIFY counts nobody
    pub(crate) fn local(&self, channel: &str) -> Option<usize> {
        self.subscribers
            .lock()
            .channels
            .get(channel)
            .map(|c| c.subscribers.len())
    }
}

/// A channel name no other connection uses, on any proxy: process id, time and a count.
fn barrier_channel() -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "prism-barrier-{:x}-{nanos:x}-{:x}",
        std::process::id(),
        COUNT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Hands each message to its channel's subscribers; a subscriber whose hand-off is full
/// is dropped (its stream ends). Ends, ending every subscription, when the connection
/// does.
async fn read(
    mut incoming: Incoming,
    decode: Decode,
    subscribers: Subscribers,
    barrier: String,
    lost: CancellationToken,
) {
    while let Some((channel, payload)) = incoming.next().await {
        let mut routes = subscribers.lock();
        let Routes { channels, joining } = &mut *routes;
        if channel == barrier {
            let id = std::str::from_utf8(&payload).ok().and_then(|s| s.parse::<u64>().ok());
            if let Some(wake) = id.and_then(|id| joining.remove(&id)) {
                let _ = wake.send(());
            }
            continue;
        }
        let Some(channel) = channels.get_mut(&channel) else {
            continue;
        };
        let message = decode(&channel.topic, payload);
        // try_send: the reader never waits on a subscriber. One still joining is kept
        // and handed nothing.
        channel
            .subscribers
            .retain(|id, tx| joining.contains_key(id) || tx.try_send(message.clone()).is_ok());
    }
    // Emptied before the connection is marked lost: a subscribe that opens the next one
    // must not see its subscribers cleared by this task.
    {
        let mut routes = subscribers.lock();
        routes.channels.clear();
        routes.joining.clear();
    }
    lost.cancel();
}

/// Removes a subscriber when its stream is dropped, and the channel from the server with
/// its last one.
struct Leave<L: Listener> {
    shared: Arc<tokio::sync::Mutex<Option<Shared<L>>>>,
    listener: L,
    subscribers: Subscribers,
    channel: String,
    id: u64,
}

impl<L: Listener> Drop for Leave<L> {
    fn drop(&mut self) {
        let last = {
            let mut routes = self.subscribers.lock();
            routes.joining.remove(&self.id);
            let Some(channel) = routes.channels.get_mut(&self.channel) else {
                return;
            };
            channel.subscribers.remove(&self.id);
            let last = channel.subscribers.is_empty();
            if last {
                routes.channels.remove(&self.channel);
            }
            last
        };
        if last && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (shared, subscribers) = (self.shared.clone(), self.subscribers.clone());
            let (listener, channel) = (self.listener.clone(), std::mem::take(&mut self.channel));
            runtime.spawn(async move {
                let _serialised = shared.lock().await;
                // A subscriber may have come for the channel since.
                if !subscribers.lock().channels.contains_key(&channel) {
                    let _ = listener.unlisten(&channel).await;
                }
            });
        }
    }
}
