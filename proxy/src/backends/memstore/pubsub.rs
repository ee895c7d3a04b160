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

use crate::clock::unix_ms;
use crate::interfaces::{Message, PubSubBasic, Subscription};
use crate::{BackendError, BackendResult};

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
    topics: HashMap<String, broadcast::Sender<Message>>,
    subscriptions: HashMap<String, CancellationToken>,
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
        // The dropped receiver may not be released yet: remove the topic only when no
        // other subscriber is left (count 1 = the receiver inside this very stream).
        if state.topics.get(&self.topic).is_some_and(|tx| tx.receiver_count() <= 1) {
            state.topics.remove(&self.topic);
        }
    }
}

#[async_trait]
impl PubSubBasic for PubSubHub {
    async fn publish(&self, topic: String, payload: Bytes) -> BackendResult<u64> {
        let state = self.state.lock();
        let Some(tx) = state.topics.get(&topic) else {
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

    async fn subscribe(&self, topic: String) -> BackendResult<Subscription> {
        let id = format!("sub-{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let token = CancellationToken::new();
        let rx = {
            let mut state = self.state.lock();
            state.subscriptions.insert(id.clone(), token.clone());
            state
                .topics
                .entry(topic.clone())
                .or_insert_with(|| broadcast::channel(SUBSCRIBER_BUFFER).0)
                .subscribe()
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

    async fn unsubscribe(&self, subscription_id: &str) -> BackendResult<bool> {
        let token = self.state.lock().subscriptions.remove(subscription_id);
        Ok(token.map(|t| t.cancel()).is_some())
    }
}
