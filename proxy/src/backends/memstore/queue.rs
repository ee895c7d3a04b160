//! Work queues with visibility timeouts: a message is ready, or in flight under one
//! receipt until acked, nacked, or its deadline passes (then it is ready again).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::BackendError;
use crate::interfaces::{QueueBasic, ReceivedMessage, check_receive};

/// In-memory queues with visibility timeouts: queue_basic.
#[derive(Default)]
pub struct Queues {
    queues: Mutex<HashMap<String, Arc<QueueState>>>,
    /// Message ids are unique across queues and time: a queue forgotten when empty and
    /// made again never reuses one.
    next_id: AtomicU64,
    next_receipt: AtomicU64,
}

#[derive(Default)]
struct QueueState {
    inner: Mutex<QueueInner>,
    /// Woken when a message becomes ready (enqueue, nack).
    ready: Notify,
}

#[derive(Default)]
struct QueueInner {
    messages: HashMap<u64, Stored>,
    /// Ready message ids: lowest (oldest) first.
    ready: BTreeSet<u64>,
    /// receipt -> (message id, visibility deadline)
    in_flight: HashMap<String, (u64, Instant)>,
}

struct Stored {
    payload: Bytes,
    deliveries: u32,
    receipt: Option<String>,
}

impl QueueInner {
    /// Makes messages whose visibility timeout passed ready again; returns the earliest
    /// deadline still pending.
    fn reclaim(&mut self, now: Instant) -> Option<Instant> {
        let mut earliest = None;
        let expired: Vec<String> = self
            .in_flight
            .iter()
            .filter_map(|(receipt, (_, deadline))| {
                if *deadline <= now {
                    Some(receipt.clone())
                } else {
                    earliest = Some(earliest.map_or(*deadline, |e: Instant| e.min(*deadline)));
                    None
                }
            })
            .collect();
        for receipt in expired {
            self.release(&receipt);
        }
        earliest
    }

    /// Ends a delivery and makes its message ready again.
    fn release(&mut self, receipt: &str) -> bool {
        let Some((id, _)) = self.in_flight.remove(receipt) else {
            return false;
        };
        if let Some(stored) = self.messages.get_mut(&id) {
            stored.receipt = None;
            self.ready.insert(id);
        }
        true
    }

    /// Whether `receipt` names a delivery still within its visibility timeout.
    fn valid(&mut self, receipt: &str, now: Instant) -> bool {
        match self.in_flight.get(receipt) {
            Some((_, deadline)) if *deadline > now => true,
            Some(_) => {
                self.release(receipt);
                false
            }
            None => false,
        }
    }
}

impl Queues {
    fn queue(&self, name: &str) -> Arc<QueueState> {
        let mut queues = self.queues.lock();
        queues.entry(name.to_string()).or_default().clone()
    }

    /// The queue if it exists: settling a receipt never creates one, so acks and nacks
    /// naming random queues leave nothing behind.
    /// Forgets `name`'s queue when it holds nothing and only `state` (the caller's handle)
    /// uses it: a receive on a name never enqueued to leaves nothing behind.
    fn forget_if_unused(&self, name: &str, state: &Arc<QueueState>) {
        let mut queues = self.queues.lock();
        // Handles are only made under this lock: the map's and the caller's are the last.
        if Arc::strong_count(state) == 2 && {
            let inner = state.inner.lock();
            inner.messages.is_empty() && inner.in_flight.is_empty()
        } {
            queues.remove(name);
        }
    }

    fn existing(&self, name: &str) -> Option<Arc<QueueState>> {
        self.queues.lock().get(name).cloned()
    }

    /// Messages held (ready or in flight) in a queue, for tests.
    pub fn depth(&self, name: &str) -> usize {
        self.existing(name).map_or(0, |q| q.inner.lock().messages.len())
    }

    /// How many queues exist, for tests.
    pub fn count(&self) -> usize {
        self.queues.lock().len()
    }

    fn take_ready(&self, inner: &mut QueueInner, max: usize, deadline: Instant) -> Vec<ReceivedMessage> {
        let ids: Vec<u64> = inner.ready.iter().take(max).copied().collect();
        ids.into_iter()
            .filter_map(|id| {
                inner.ready.remove(&id);
                let stored = inner.messages.get_mut(&id)?;
                stored.deliveries += 1;
                let receipt = format!("{id}.{}", self.next_receipt.fetch_add(1, Ordering::Relaxed) + 1);
                stored.receipt = Some(receipt.clone());
                let message = ReceivedMessage {
                    message_id: id.to_string(),
                    receipt: receipt.clone(),
                    payload: stored.payload.clone(),
                    delivery_count: stored.deliveries,
                };
                inner.in_flight.insert(receipt, (id, deadline));
                Some(message)
            })
            .collect()
    }
}

impl QueueState {}

#[async_trait]
impl QueueBasic for Queues {
    async fn enqueue(&self, queue: String, payload: Bytes) -> Result<String, BackendError> {
        let state = self.queue(&queue);
        let id = {
            let mut inner = state.inner.lock();
            let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
            inner.messages.insert(
                id,
                Stored {
                    payload,
                    deliveries: 0,
                    receipt: None,
                },
            );
            inner.ready.insert(id);
            id
        };
        state.ready.notify_waiters();
        Ok(id.to_string())
    }

    async fn receive(
        &self,
        queue: String,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, BackendError> {
        check_receive(max, visibility)?;
        let state = self.queue(&queue);
        // However the receive ends (answered, timed out, or its caller gone).
        struct Forget<'a>(&'a Queues, &'a str, &'a Arc<QueueState>);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.forget_if_unused(self.1, self.2);
            }
        }
        let _forget = Forget(self, &queue, &state);
        let give_up = Instant::now() + wait;
        loop {
            // Registered before looking, so an enqueue between the look and the wait
            // still wakes us.
            let notified = state.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let now = Instant::now();
            let next_expiry = {
                let mut inner = state.inner.lock();
                let next_expiry = inner.reclaim(now);
                let received = self.take_ready(&mut inner, max as usize, now + visibility);
                if !received.is_empty() || now >= give_up {
                    return Ok(received);
                }
                next_expiry
            };
            let wake = next_expiry.map_or(give_up, |e| e.min(give_up));
            let _ = tokio::time::timeout_at(wake, notified).await;
        }
    }

    async fn ack(&self, queue: String, receipt: String) -> Result<bool, BackendError> {
        let Some(state) = self.existing(&queue) else {
            return Ok(false);
        };
        let mut inner = state.inner.lock();
        if !inner.valid(&receipt, Instant::now()) {
            return Ok(false);
        }
        if let Some((id, _)) = inner.in_flight.remove(&receipt) {
            inner.messages.remove(&id);
        }
        Ok(true)
    }

    async fn nack(&self, queue: String, receipt: String) -> Result<bool, BackendError> {
        let Some(state) = self.existing(&queue) else {
            return Ok(false);
        };
        let requeued = {
            let mut inner = state.inner.lock();
            inner.valid(&receipt, Instant::now()) && inner.release(&receipt)
        };
        if requeued {
            state.ready.notify_waiters();
        }
        Ok(requeued)
    }
}
