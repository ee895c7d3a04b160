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
//!
//! A consumer no one has pulled from for `queue_inactive_threshold` is removed by the
//! server (never while a delivery is unacknowledged). The proxy forgets its handle before
//! then (half the threshold after the last pull it looks the consumer up again, making it
//! if the server removed it), so its cache holds only queues in use; messages wait in
//! the work-queue stream meanwhile, which needs no consumer to keep them.

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
use crate::BackendError;
use crate::backends::driver::bounded;
use crate::interfaces::{QueueBasic, ReceivedMessage, check_receive};

#[derive(Default)]
pub struct Queues {
    stream: tokio::sync::OnceCell<async_nats::jetstream::stream::Stream>,
    consumers: Mutex<Consumers>,
    /// receipt -> the delivery's queue, visibility deadline and timer.
    in_flight: Arc<Mutex<HashMap<String, InFlight>>>,
}

/// The consumer handles of the queues pulled from lately. Callers of one queue share its
/// lookup, and no lock is held while JetStream answers, so a slow one holds up only its
/// queue.
#[derive(Default)]
struct Consumers {
    by_queue: HashMap<String, Cached>,
    /// The map's size at which handles past their time are swept out.
    sweep_at: usize,
}

#[derive(Clone)]
struct Cached {
    consumer: Arc<tokio::sync::OnceCell<PullConsumer>>,
    /// When the handle was made (the server's inactivity clock starts then, at a create,
    /// or earlier, at a lookup) or last pulled from.
    used: Instant,
}

impl Consumers {
    /// The handle of `queue`'s consumer for a pull now: a fresh (empty) one when there is
    /// none used within `fresh_for`.
    fn handle(&mut self, queue: &str, fresh_for: Duration) -> Arc<tokio::sync::OnceCell<PullConsumer>> {
        let now = Instant::now();
        let cached = match self.by_queue.get_mut(queue) {
            Some(cached) if now.saturating_duration_since(cached.used) < fresh_for => cached,
            _ => {
                self.sweep(now, fresh_for);
                self.by_queue
                    .entry(queue.to_string())
                    .insert_entry(Cached {
                        consumer: Default::default(),
                        used: now,
                    })
                    .into_mut()
            }
        };
        cached.used = now;
        cached.consumer.clone()
    }

    /// Forgets `queue`'s handle (its consumer may be gone), so the next call looks it up.
    fn forget(&mut self, queue: &str) {
        self.by_queue.remove(queue);
    }

    /// Drops the handles past `fresh_for` once the map has doubled since the last sweep,
    /// so sweeping costs O(1) per insert and the map holds about twice the queues in use.
    fn sweep(&mut self, now: Instant, fresh_for: Duration) {
        if self.by_queue.len() < self.sweep_at {
            return;
        }
        self.by_queue
            .retain(|_, cached| now.saturating_duration_since(cached.used) < fresh_for);
        self.sweep_at = (self.by_queue.len() * 2).max(64);
    }
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

    /// The work-queue stream every queue of this namespace is stored in.
    async fn stream(&self) -> Result<&async_nats::jetstream::stream::Stream, BackendError> {
        self.queues
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
            .await
    }

    /// `queue`'s consumer, made when the server has none, for a pull now.
    async fn consumer(&self, queue: &str) -> Result<PullConsumer, BackendError> {
        let stream = self.stream().await?;
        let fresh_for = self.queue_inactive_threshold / 2;
        let cell = self.queues.consumers.lock().handle(queue, fresh_for);
        let consumer = cell
            .get_or_try_init(|| async {
                let name = format!("q{:016x}", fnv1a(queue.as_bytes()));
                let config = pull::Config {
                    durable_name: Some(name.clone()),
                    description: Some(format!("Prism queue {queue:?}")),
                    filter_subject: self.queue_subject(queue),
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: self.ack_wait,
                    max_deliver: -1,
                    inactive_threshold: self.queue_inactive_threshold,
                    ..Default::default()
                };
                let consumer = stream
                    .get_or_create_consumer(&name, config.clone())
                    .await
                    .map_err(|e| error("creating the queue consumer", e))?;
                let made = &consumer.cached_info().config;
                if made.ack_wait == config.ack_wait && made.inactive_threshold == config.inactive_threshold {
                    return Ok(consumer);
                }
                // Made with other settings (an earlier config or version): take ours.
                stream
                    .update_consumer(config)
                    .await
                    .map_err(|e| error("updating the queue consumer", e))
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
    ) -> Result<Vec<async_nats::jetstream::Message>, BackendError> {
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
    async fn settle(&self, receipt: String, body: &'static [u8]) -> Result<(), BackendError> {
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
) -> Result<Vec<async_nats::jetstream::Message>, BackendError> {
    let mut batch = batch.map_err(|e| error("pulling", e))?;
    let mut out = Vec::new();
    while let Some(message) = batch.next().await {
        out.push(message.map_err(|e| error("pulling", e))?);
    }
    Ok(out)
}

#[async_trait]
impl QueueBasic for Nats {
    async fn enqueue(&self, queue: String, payload: Bytes) -> Result<String, BackendError> {
        self.stream().await?;
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
    ) -> Result<Vec<ReceivedMessage>, BackendError> {
        check_receive(max, visibility)?;
        let consumer = self.consumer(&queue).await?;
        let pulled = bounded("nats", self.timeout + wait, self.pull(&consumer, max as usize, wait)).await;
        if pulled.is_err() {
            // Perhaps the consumer is gone (deleted by hand); the next receive looks it up.
            self.queues.consumers.lock().forget(&queue);
        }
        let messages = pulled?;
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

    async fn ack(&self, queue: String, receipt: String) -> Result<bool, BackendError> {
        if !self.queues.take(&queue, &receipt) {
            return Ok(false);
        }
        self.settle(receipt, b"+ACK").await?;
        Ok(true)
    }

    async fn nack(&self, queue: String, receipt: String) -> Result<bool, BackendError> {
        if !self.queues.take(&queue, &receipt) {
            return Ok(false);
        }
        self.settle(receipt, b"-NAK").await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Handles of queues not pulled from are swept out as new queues come, so the cache
    /// holds about twice the queues in use however many names were ever used.
    #[tokio::test(start_paused = true)]
    async fn the_handle_cache_holds_only_queues_in_use() {
        let fresh_for = Duration::from_secs(60);
        let mut consumers = Consumers::default();
        let busy = consumers.handle("busy", fresh_for);
        for round in 0..20 {
            for i in 0..500 {
                consumers.handle(&format!("once-{round}-{i}"), fresh_for);
            }
            assert!(
                Arc::ptr_eq(&busy, &consumers.handle("busy", fresh_for)),
                "a queue in use keeps its handle"
            );
            tokio::time::advance(fresh_for / 2).await;
        }
        // In use at any time: two rounds of names (1000) and "busy"; 10,001 were used.
        assert!(
            consumers.by_queue.len() <= 2 * 1001,
            "{} handles",
            consumers.by_queue.len()
        );
        // A handle not used within `fresh_for` is replaced: its consumer is looked up again.
        tokio::time::advance(fresh_for).await;
        assert!(!Arc::ptr_eq(&busy, &consumers.handle("busy", fresh_for)));
    }
}
