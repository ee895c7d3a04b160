//! queue_basic on a JetStream work-queue stream: one durable pull consumer per queue,
//! explicit acks, delivery counts and message ids (stream sequences) from JetStream.
//!
//! JetStream's visibility is the consumer's ack wait, the same for every receive. A
//! receive asks for its own visibility, so the proxy keeps a timer per delivery: it
//! sends `-NAK` when a shorter visibility ends (the message is redelivered at once) and
//! `+WPI` (progress) to stretch the ack wait for a longer one. If the proxy dies, the
//! ack wait still brings every unacknowledged message back. The receipt is the
//! delivery's ack subject; it is honoured by the proxy that handed it out, while its
//! visibility lasts.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::stream::{RetentionPolicy, StorageType};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::time::Instant;

use super::{Nats, error, fnv1a, token};
use crate::backends::driver::bounded;
use crate::interfaces::{QueueBasic, ReceivedMessage, check_receive};
use crate::{BackendError, BackendResult};

#[derive(Default)]
pub struct Queues {
    stream: tokio::sync::OnceCell<async_nats::jetstream::stream::Stream>,
    /// One consumer per queue, made once: callers of one queue share its creation, and
    /// no lock is held while JetStream answers, so a slow create holds up only its queue.
    consumers: Mutex<HashMap<String, Arc<tokio::sync::OnceCell<PullConsumer>>>>,
    /// receipt -> the delivery's queue, visibility deadline and timer.
    in_flight: Arc<Mutex<HashMap<String, InFlight>>>,
}

struct InFlight {
    queue: String,
    deadline: Instant,
    timer: tokio::task::AbortHandle,
}

impl Queues {
    /// Removes the delivery if `receipt` is current for `queue`, stopping its timer.
    fn take(&self, queue: &str, receipt: &str) -> bool {
        let mut in_flight = self.in_flight.lock();
        match in_flight.get(receipt) {
            Some(f) if f.queue == queue && f.deadline > Instant::now() => {
                if let Some(f) = in_flight.remove(receipt) {
                    f.timer.abort();
                }
                true
            }
            _ => false,
        }
    }
}

impl Nats {
    fn queue_subject(&self, queue: &str) -> String {
        format!("prism.q.{}.{}", self.tag, token(queue))
    }

    async fn consumer(&self, queue: &str) -> BackendResult<PullConsumer> {
        let stream = self
            .queues
            .stream
            .get_or_try_init(|| async {
                self.jetstream
                    .get_or_create_stream(async_nats::jetstream::stream::Config {
                        name: format!("PRISM_Q_{}", self.tag),
                        description: Some(format!("Prism queues for prefix {:?}", self.prefix)),
                        subjects: vec![format!("prism.q.{}.>", self.tag)],
                        retention: RetentionPolicy::WorkQueue,
                        storage: StorageType::File,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| error("creating the queue stream", e))
            })
            .await?;
        let cell = self.queues.consumers.lock().entry(queue.to_string()).or_default().clone();
        let consumer = cell.get_or_try_init(|| async {
            let name = format!("q{:016x}", fnv1a(queue.as_bytes()));
            stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    description: Some(format!("Prism queue {queue:?}")),
                    filter_subject: self.queue_subject(queue),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    max_deliver: -1,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| error("creating the queue consumer", e))
        })
        .await?;
        Ok(consumer.clone())
    }

    /// Pulls up to `max` messages: what is there now, else waits up to `wait` for one.
    async fn pull(
        &self,
        consumer: &PullConsumer,
        max: usize,
        wait: Duration,
    ) -> BackendResult<Vec<async_nats::jetstream::Message>> {
        let mut got = collect(consumer.fetch().max_messages(max).messages().await).await?;
        if got.is_empty() && wait >= Duration::from_millis(10) {
            got = collect(consumer.batch().max_messages(1).expires(wait).messages().await).await?;
            if !got.is_empty() && max > 1 {
                got.extend(collect(consumer.fetch().max_messages(max - 1).messages().await).await?);
            }
        }
        Ok(got)
    }

    /// Holds a delivery for `visibility`: NAKs it then, renewing the ack wait until then
    /// when the visibility is longer.
    fn hold(&self, queue: &str, receipt: String, visibility: Duration) {
        let deadline = Instant::now() + visibility;
        let (client, ack_wait, in_flight) = (self.client.clone(), self.ack_wait, self.queues.in_flight.clone());
        let subject = receipt.clone();
        let timer = tokio::spawn(async move {
            let renew_every = ack_wait / 2;
            while deadline.saturating_duration_since(Instant::now()) > renew_every {
                tokio::time::sleep(renew_every).await;
                let _ = client.publish(subject.clone(), Bytes::from_static(b"+WPI")).await;
            }
            tokio::time::sleep_until(deadline).await;
            let expired = in_flight.lock().remove(&subject).is_some();
            if expired {
                let _ = client.publish(subject, Bytes::from_static(b"-NAK")).await;
                let _ = client.flush().await;
            }
        });
        self.queues.in_flight.lock().insert(
            receipt,
            InFlight {
                queue: queue.to_string(),
                deadline,
                timer: timer.abort_handle(),
            },
        );
    }

    /// Sends `body` to a delivery's ack subject and waits for the server to confirm.
    async fn settle(&self, receipt: String, body: &'static [u8]) -> BackendResult<()> {
        bounded("nats", self.timeout, async {
            self.client
                .request(receipt, Bytes::from_static(body))
                .await
                .map(|_| ())
                .map_err(|e| error("acknowledging", e))
        })
        .await
    }
}

async fn collect<E: std::fmt::Display>(
    batch: Result<
        impl futures::Stream<Item = Result<async_nats::jetstream::Message, impl std::fmt::Display>> + Unpin,
        E,
    >,
) -> BackendResult<Vec<async_nats::jetstream::Message>> {
    let mut batch = batch.map_err(|e| error("pulling", e))?;
    let mut out = Vec::new();
    while let Some(message) = batch.next().await {
        out.push(message.map_err(|e| error("pulling", e))?);
    }
    Ok(out)
}

#[async_trait]
impl QueueBasic for Nats {
    async fn enqueue(&self, queue: String, payload: Bytes) -> BackendResult<String> {
        // The consumer must exist before the first message, or a work queue has nobody to
        // hold it for.
        self.consumer(&queue).await?;
        let subject = self.queue_subject(&queue);
        let ack = bounded("nats", self.timeout, async {
            let pending = self
                .jetstream
                .publish(subject, payload)
                .await
                .map_err(|e| error("enqueue", e))?;
            // Returns once JetStream has stored the message.
            pending.await.map_err(|e| error("enqueue", e))
        })
        .await?;
        Ok(ack.sequence.to_string())
    }

    async fn receive(
        &self,
        queue: String,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> BackendResult<Vec<ReceivedMessage>> {
        check_receive(max, visibility)?;
        let consumer = self.consumer(&queue).await?;
        let messages = bounded("nats", self.timeout + wait, self.pull(&consumer, max as usize, wait)).await?;
        let mut out = Vec::with_capacity(messages.len());
        for message in messages {
            let info = message.info().map_err(|e| error("reading delivery info", e))?;
            let (id, delivered) = (info.stream_sequence, info.delivered);
            let receipt = message
                .reply
                .as_ref()
                .map(|r| r.to_string())
                .ok_or_else(|| BackendError::Internal("nats: a JetStream message without an ack subject".into()))?;
            self.hold(&queue, receipt.clone(), visibility);
            out.push(ReceivedMessage {
                message_id: id.to_string(),
                receipt,
                payload: message.payload.clone(),
                delivery_count: delivered.max(1) as u32,
            });
        }
        Ok(out)
    }

    async fn ack(&self, queue: String, receipt: String) -> BackendResult<bool> {
        if !self.queues.take(&queue, &receipt) {
            return Ok(false);
        }
        self.settle(receipt, b"+ACK").await?;
        Ok(true)
    }

    async fn nack(&self, queue: String, receipt: String) -> BackendResult<bool> {
        if !self.queues.take(&queue, &receipt) {
            return Ok(false);
        }
        self.settle(receipt, b"-NAK").await?;
        Ok(true)
    }
}
