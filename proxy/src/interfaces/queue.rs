use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{BackendError, BackendResult};

/// A message handed out by `receive`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Names the message across deliveries.
    pub message_id: String,
    /// Names this delivery; `ack` and `nack` take it.
    pub receipt: String,
    /// The bytes enqueued.
    pub payload: Bytes,
    /// 1 on first delivery.
    pub delivery_count: u32,
}

/// queue_basic: at-least-once delivery with visibility timeouts.
#[async_trait]
pub trait QueueBasic: Send + Sync {
    /// Returns the new message's id.
    async fn enqueue(&self, queue: String, payload: Bytes) -> BackendResult<String>;
    /// Up to `max` visible messages, each hidden from other receivers for `visibility`;
    /// waits up to `wait` for the first one.
    async fn receive(
        &self,
        queue: String,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> BackendResult<Vec<ReceivedMessage>>;
    /// Removes the message for good; `false` when the receipt is unknown or expired.
    async fn ack(&self, queue: String, receipt: String) -> BackendResult<bool>;
    /// Makes the message visible again now; `false` when the receipt is unknown or expired.
    async fn nack(&self, queue: String, receipt: String) -> BackendResult<bool>;
}

/// The arguments every backend's `receive` refuses: no messages asked for, or no
/// visibility timeout.
pub fn check_receive(max: u32, visibility: Duration) -> BackendResult<()> {
    if max == 0 {
        return Err(BackendError::invalid("max_messages", "must be at least 1"));
    }
    if visibility.is_zero() {
        return Err(BackendError::invalid("visibility_timeout_ms", "must be greater than 0"));
    }
    Ok(())
}
