//! queue_basic on a stream per queue with one consumer group. Visibility deadlines live
//! in a hash beside the stream, so each receive can choose its own timeout; the Lua
//! scripts next to this file do every step atomically on the server.
//!
//! A receipt is `<message id>/<delivery count>`: it stops working once the message was
//! delivered again.

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::Redis;
use crate::BackendError;
use crate::backends::driver::poll_until;
use crate::interfaces::{QueueBasic, ReceivedMessage, check_receive};

const GROUP: &str = "prism";

static ENQUEUE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("enqueue.lua")));
static RECEIVE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("receive.lua")));
static SETTLE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("settle.lua")));

impl Redis {
    fn stream(&self, queue: &str) -> Vec<u8> {
        self.name("q", queue.as_bytes())
    }

    fn deadlines(&self, queue: &str) -> Vec<u8> {
        self.name("qd", queue.as_bytes())
    }

    async fn settle(&self, queue: &str, receipt: &str, how: &str) -> Result<bool, BackendError> {
        let Some((id, delivery)) = receipt.rsplit_once('/') else {
            return Ok(false);
        };
        let Ok(delivery) = delivery.parse::<u32>() else {
            return Ok(false);
        };
        let mut call = SETTLE.prepare_invoke();
        call.key(self.stream(queue))
            .key(self.deadlines(queue))
            .arg(GROUP)
            .arg(id)
            .arg(delivery)
            .arg(how);
        let settled: u32 = self.run(call).await?;
        Ok(settled == 1)
    }
}

#[async_trait]
impl QueueBasic for Redis {
    async fn enqueue(&self, queue: String, payload: Bytes) -> Result<String, BackendError> {
        let mut call = ENQUEUE.prepare_invoke();
        call.key(self.stream(&queue)).arg(GROUP).arg(payload.as_ref());
        self.run(call).await
    }

    async fn receive(
        &self,
        queue: String,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, BackendError> {
        check_receive(max, visibility)?;
        let (stream, deadlines) = (self.stream(&queue), self.deadlines(&queue));
        let visibility_ms = (visibility.as_millis() as u64).max(1);
        poll_until(wait, || {
            let mut call = RECEIVE.prepare_invoke();
            call.key(&stream).key(&deadlines).arg(GROUP).arg(max).arg(visibility_ms);
            async move {
                let got: Vec<(String, u32, Vec<u8>)> = self.run(call).await?;
                Ok(got
                    .into_iter()
                    .map(|(id, delivery_count, payload)| ReceivedMessage {
                        receipt: format!("{id}/{delivery_count}"),
                        message_id: id,
                        payload: Bytes::from(payload),
                        delivery_count,
                    })
                    .collect())
            }
        })
        .await
    }

    async fn ack(&self, queue: String, receipt: String) -> Result<bool, BackendError> {
        self.settle(&queue, &receipt, "ack").await
    }

    async fn nack(&self, queue: String, receipt: String) -> Result<bool, BackendError> {
        self.settle(&queue, &receipt, "nack").await
    }
}
