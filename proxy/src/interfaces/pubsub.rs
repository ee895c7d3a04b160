use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::BackendResult;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub payload: Bytes,
    /// Publish time, Unix milliseconds.
    pub published_at_ms: i64,
}

/// A live subscription: every message published after `subscribe` returned, in order per
/// publisher. It ends when dropped, on `unsubscribe`, or when the server shuts down.
pub struct Subscription {
    pub id: String,
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
