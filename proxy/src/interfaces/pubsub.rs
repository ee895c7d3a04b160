use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::BackendResult;

/// A message as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The topic it was published on.
    pub topic: String,
    /// The bytes published.
    pub payload: Bytes,
    /// Publish time, Unix milliseconds.
    pub published_at_ms: i64,
}

/// A live subscription: every message published after `subscribe` returned, in order per
/// publisher. It ends when dropped, on `unsubscribe`, or when the server shuts down.
pub struct Subscription {
    /// Names the subscription for `unsubscribe`.
    pub id: String,
    /// The messages; a retryable error last when the backend connection was lost.
    pub messages: BoxStream<'static, BackendResult<Message>>,
}

/// pubsub_basic: fan-out to the subscribers live at publish time; nothing is stored.
#[async_trait]
pub trait PubSubBasic: Send + Sync {
    /// Returns how many subscribers received the message (0 when unknown).
    async fn publish(&self, topic: String, payload: Bytes) -> BackendResult<u64>;
    /// Returns once the subscription is live: a message published after this returns is
    /// delivered to it.
    async fn subscribe(&self, topic: String) -> BackendResult<Subscription>;
    /// Ends a subscription by id; `false` when there was no such live subscription.
    async fn unsubscribe(&self, subscription_id: &str) -> BackendResult<bool>;
}
