//! Every subscription of one driver on one shared SUBSCRIBE connection: a channel is
//! subscribed on the server once, however many subscribers it has, and unsubscribed when
//! its last one goes. A task reads the connection and hands each message to the
//! channel's subscribers. When the connection is lost, every subscription ends (the
//! subscriber is told to subscribe again) and the next subscribe opens a new one.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use parking_lot::Mutex;
use redis::aio::PubSubSink;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::error;
use crate::backends::driver::{bounded, envelope};
use crate::interfaces::Message;
use crate::{BackendError, BackendResult};

/// Messages waiting for one subscriber between the connection and the proxy's own
/// per-subscription buffer, which reads eagerly; past it the subscriber is ended.
const HANDOFF: usize = 1024;

type Subscribers = Arc<Mutex<HashMap<Vec<u8>, Channel>>>;

/// One server channel: its topic and the subscribers it feeds.
struct Channel {
    topic: String,
    subscribers: HashMap<u64, mpsc::Sender<BackendResult<Message>>>,
}

/// The shared connection while it lives.
struct Shared {
    sink: PubSubSink,
    /// Cancelled when the reading task ends (the connection was lost).
    lost: CancellationToken,
}

pub(super) struct Subscriptions {
    client: redis::Client,
    timeout: Duration,
    /// Locked while a connection is opened or a channel (un)subscribed on it, so
    /// concurrent first subscribes share one connection and a channel's SUBSCRIBE and
    /// UNSUBSCRIBE never cross.
    shared: Arc<tokio::sync::Mutex<Option<Shared>>>,
    /// The subscribers of the connection that lives now (emptied when it is lost).
    subscribers: Subscribers,
    next_id: AtomicU64,
}

impl Subscriptions {
    pub(super) fn new(client: redis::Client, timeout: Duration) -> Subscriptions {
        Subscriptions {
            client,
            timeout,
            shared: Arc::default(),
            subscribers: Arc::default(),
            next_id: AtomicU64::new(0),
        }
    }

    /// The messages published on `channel` from now on (SUBSCRIBE is confirmed before
    /// this returns when the channel is new on the connection).
    pub(super) async fn subscribe(
        &self,
        channel: Vec<u8>,
        topic: String,
    ) -> BackendResult<BoxStream<'static, BackendResult<Message>>> {
        let mut shared = self.shared.lock().await;
        if shared.as_ref().is_none_or(|s| s.lost.is_cancelled()) {
            *shared = Some(self.open().await?);
        }
        let Some(conn) = shared.as_mut() else {
            return Err(BackendError::Internal("redis: no subscription connection".into()));
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(HANDOFF);
        let first = {
            let mut subscribers = self.subscribers.lock();
            let entry = subscribers.entry(channel.clone()).or_insert_with(|| Channel {
                topic,
                subscribers: HashMap::new(),
            });
            entry.subscribers.insert(id, tx);
            entry.subscribers.len() == 1
        };
        if first {
            let confirmed = bounded("redis", self.timeout, async {
                conn.sink.subscribe(channel.as_slice()).await.map_err(error)
            })
            .await;
            if let Err(e) = confirmed {
                self.subscribers.lock().remove(&channel);
                return Err(e);
            }
        }
        let leave = Leave {
            shared: self.shared.clone(),
            sink: conn.sink.clone(),
            subscribers: self.subscribers.clone(),
            channel,
            id,
        };
        let messages = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |m| {
            let _ = &leave;
            m
        });
        Ok(messages.boxed())
    }

    async fn open(&self) -> BackendResult<Shared> {
        let pubsub = bounded("redis", self.timeout, async {
            self.client.get_async_pubsub().await.map_err(error)
        })
        .await?;
        let (sink, stream) = pubsub.split();
        let lost = CancellationToken::new();
        tokio::spawn(read(stream, self.subscribers.clone(), lost.clone()));
        Ok(Shared { sink, lost })
    }

    /// How many of this driver's subscribers listen on `channel`, when its connection
    /// subscribes to it (the server counts that connection once).
    pub(super) fn local(&self, channel: &[u8]) -> Option<usize> {
        self.subscribers.lock().get(channel).map(|c| c.subscribers.len())
    }

}

/// Hands each message to its channel's subscribers; a subscriber whose hand-off is full
/// is dropped (its stream ends). Ends, ending every subscription, when the connection
/// does.
async fn read(mut stream: redis::aio::PubSubStream, subscribers: Subscribers, lost: CancellationToken) {
    while let Some(msg) = stream.next().await {
        let mut subscribers = subscribers.lock();
        let Some(channel) = subscribers.get_mut(msg.get_channel_name().as_bytes()) else {
            continue;
        };
        let message = envelope::open(&channel.topic, Bytes::copy_from_slice(msg.get_payload_bytes()));
        // try_send: the reader never waits on a subscriber.
        channel
            .subscribers
            .retain(|_, tx| tx.try_send(message.clone()).is_ok());
    }
    // Emptied before the connection is marked lost: a subscribe that opens the next one
    // must not see its subscribers cleared by this task.
    subscribers.lock().clear();
    lost.cancel();
}

/// Removes a subscriber when its stream is dropped, and the channel from the server with
/// its last one.
struct Leave {
    shared: Arc<tokio::sync::Mutex<Option<Shared>>>,
    sink: PubSubSink,
    subscribers: Subscribers,
    channel: Vec<u8>,
    id: u64,
}

impl Drop for Leave {
    fn drop(&mut self) {
        let last = {
            let mut subscribers = self.subscribers.lock();
            let Some(channel) = subscribers.get_mut(&self.channel) else {
                return;
            };
            channel.subscribers.remove(&self.id);
            let last = channel.subscribers.is_empty();
            if last {
                subscribers.remove(&self.channel);
            }
            last
        };
        if last && let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (shared, subscribers) = (self.shared.clone(), self.subscribers.clone());
            let (mut sink, channel) = (self.sink.clone(), std::mem::take(&mut self.channel));
            runtime.spawn(async move {
                let _serialised = shared.lock().await;
                // A subscriber may have come for the channel since.
                if !subscribers.lock().contains_key(&channel) {
                    let _ = sink.unsubscribe(channel.as_slice()).await;
                }
            });
        }
    }
}
