//! Pub/sub hub: one broadcast channel per topic with live subscribers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_util::sync::CancellationToken;

use crate::BackendError;
use crate::clock::unix_ms;
use crate::interfaces::{Message, PubSubBasic, Subscription};

/// Messages a subscriber may fall behind by before it is cut off (it is told so).
const SUBSCRIBER_BUFFER: usize = 4096;

/// In-process topics: pubsub_basic.
#[derive(Default)]
pub struct PubSubHub {
    state: Arc<Mutex<HubState>>,
    next_id: AtomicU64,
}

#[derive(Default)]
struct HubState {
    topics: HashMap<String, Topic>,
    subscriptions: HashMap<String, CancellationToken>,
}

/// A topic's channel and how many subscription streams hold a receiver of it. Counted
/// here rather than read from the channel: a stream being dropped may or may not have
/// released its receiver yet when its guard runs, and guessing wrong closed the channel
/// under the other subscribers (the pubsub model check found it).
struct Topic {
    tx: broadcast::Sender<Message>,
    streams: usize,
}

impl PubSubHub {
    /// Live subscriptions, for tests.
    pub fn subscription_count(&self) -> usize {
        self.state.lock().subscriptions.len()
    }
}

/// Forgets a subscription when its stream is dropped, and the topic with its last one.
struct SubscriptionGuard {
    state: Arc<Mutex<HubState>>,
    id: String,
    topic: String,
}

impl Drop for SubscriptionGuard {
    fn drop(&mut self) {
        let mut state = self.state.lock();
        state.subscriptions.remove(&self.id);
        if let Some(topic) = state.topics.get_mut(&self.topic) {
            topic.streams -= 1;
            if topic.streams == 0 {
                state.topics.remove(&self.topic);
            }
        }
    }
}

#[async_trait]
impl PubSubBasic for PubSubHub {
    async fn publish(&self, topic: String, payload: Bytes) -> Result<u64, BackendError> {
        let state = self.state.lock();
        let Some(Topic { tx, .. }) = state.topics.get(&topic) else {
            return Ok(0);
        };
        let message = Message {
            topic,
            payload,
            published_at_ms: unix_ms(),
        };
        // Sent under the lock so two publishers' messages reach every subscriber in the
        // same order.
        Ok(tx.send(message).map(|n| n as u64).unwrap_or(0))
    }

    async fn subscribe(&self, topic: String) -> Result<Subscription, BackendError> {
        let id = format!("sub-{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let token = CancellationToken::new();
        let rx = {
            let mut state = self.state.lock();
            state.subscriptions.insert(id.clone(), token.clone());
            let entry = state.topics.entry(topic.clone()).or_insert_with(|| Topic {
                tx: broadcast::channel(SUBSCRIBER_BUFFER).0,
                streams: 0,
            });
            entry.streams += 1;
            entry.tx.subscribe()
        };
        let guard = SubscriptionGuard {
            state: self.state.clone(),
            id: id.clone(),
            topic,
        };
        let messages = BroadcastStream::new(rx)
            .take_until(token.cancelled_owned())
            .scan(false, move |cut_off, item| {
                let _ = &guard;
                if *cut_off {
                    return futures::future::ready(None);
                }
                let item = item.map_err(|BroadcastStreamRecvError::Lagged(n)| {
                    *cut_off = true;
                    BackendError::Overloaded(format!(
                        "subscriber fell {n} messages behind (buffer {SUBSCRIBER_BUFFER}); subscription ended"
                    ))
                });
                futures::future::ready(Some(item))
            })
            .boxed();
        Ok(Subscription { id, messages })
    }

    async fn unsubscribe(&self, subscription_id: &str) -> Result<bool, BackendError> {
        let token = self.state.lock().subscriptions.remove(subscription_id);
        Ok(token.map(|t| t.cancel()).is_some())
    }
}
