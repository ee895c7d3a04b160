//! What the server-backed drivers (redis, postgres, nats, clickhouse) share: a deadline on
//! every backend call, the pub/sub envelope carrying the publish time, polling for queue
//! receives, and the registry of live subscriptions.

// Each part serves some of the server drivers; a build with only some of them has the
// others' parts unused.
#![cfg_attr(
    not(all(feature = "redis", feature = "postgres", feature = "nats")),
    allow(dead_code)
)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::interfaces::{Message, Subscription};
use crate::{BackendError, BackendResult};

/// Default for a driver's `timeout` setting.
pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Runs one backend call under `limit`. A call that does not answer in time is reported
/// as UNAVAILABLE (retryable): a hung backend looks like a down one to the caller.
pub(crate) async fn bounded<T>(
    backend: &str,
    limit: Duration,
    call: impl Future<Output = BackendResult<T>>,
) -> Result<T, BackendError> {
    match tokio::time::timeout(limit, call).await {
        Ok(result) => result,
        Err(_) => Err(BackendError::Unavailable(format!(
            "{backend} did not answer within {limit:?}"
        ))),
    }
}

/// Polls `attempt` until it returns something or `wait` has passed (at least one
/// attempt), backing off from 5 ms to 50 ms between attempts. For backends without a
/// blocking receive that fits the queue contract.
pub(crate) async fn poll_until<T, F, Fut>(wait: Duration, mut attempt: F) -> Result<Vec<T>, BackendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = BackendResult<Vec<T>>>,
{
    let give_up = tokio::time::Instant::now() + wait;
    let mut pause = Duration::from_millis(5);
    loop {
        let got = attempt().await?;
        let now = tokio::time::Instant::now();
        if !got.is_empty() || now >= give_up {
            return Ok(got);
        }
        tokio::time::sleep(pause.min(give_up - now)).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// A published payload with its publish time in front (8 bytes, big-endian Unix ms), for
/// backends whose messages carry no timestamp of their own.
pub(crate) mod envelope {
    use super::*;

    pub(crate) fn seal(payload: &[u8]) -> Bytes {
        let mut out = BytesMut::with_capacity(8 + payload.len());
        out.put_i64(crate::clock::unix_ms());
        out.put_slice(payload);
        out.freeze()
    }

    pub(crate) fn open(topic: &str, mut sealed: Bytes) -> Result<Message, BackendError> {
        if sealed.len() < 8 {
            return Err(BackendError::Internal(format!(
                "a message on topic {topic} has no Prism envelope ({} bytes); was it published by another client?",
                sealed.len()
            )));
        }
        let head = sealed.split_to(8);
        let mut ms = [0u8; 8];
        ms.copy_from_slice(&head);
        Ok(Message {
            topic: topic.to_string(),
            payload: sealed,
            published_at_ms: i64::from_be_bytes(ms),
        })
    }
}

/// Live subscriptions by id, so `unsubscribe` can end one; an entry goes away when its
/// stream is dropped.
#[derive(Default, Clone)]
pub(crate) struct LiveSubscriptions {
    inner: Arc<Mutex<HashMap<String, CancellationToken>>>,
    next_id: Arc<AtomicU64>,
}

impl LiveSubscriptions {
    /// Wraps a backend's message stream as a subscription that `unsubscribe` can end.
    /// When the backend's stream ends by itself (its connection was lost), the subscriber
    /// gets a retryable UNAVAILABLE error last, so it knows to subscribe again.
    pub(crate) fn register(
        &self,
        backend: &'static str,
        messages: BoxStream<'static, BackendResult<Message>>,
    ) -> Subscription {
        let id = format!("sub-{}", self.next_id.fetch_add(1, Ordering::Relaxed) + 1);
        let token = CancellationToken::new();
        self.inner.lock().insert(id.clone(), token.clone());
        let guard = Forget {
            live: self.clone(),
            id: id.clone(),
        };
        let lost = futures::stream::once(async move {
            Err(BackendError::Unavailable(format!(
                "the {backend} connection of this subscription was lost; subscribe again"
            )))
        });
        let messages = messages
            .chain(lost)
            .take_until(token.cancelled_owned())
            .map(move |m| {
                let _ = &guard;
                m
            })
            .boxed();
        Subscription { id, messages }
    }

    pub(crate) fn end(&self, id: &str) -> bool {
        self.inner.lock().remove(id).map(|t| t.cancel()).is_some()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Forget {
    live: LiveSubscriptions,
    id: String,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.live.inner.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_and_rejects_short_input() {
        let sealed = envelope::seal(b"hello");
        let message = envelope::open("t", sealed).unwrap();
        assert_eq!(message.payload, Bytes::from_static(b"hello"));
        assert!(message.published_at_ms > 1_600_000_000_000);
        assert!(matches!(
            envelope::open("t", Bytes::from_static(b"short")),
            Err(BackendError::Internal(_))
        ));
    }

    #[tokio::test]
    async fn ended_subscription_stops_and_is_forgotten() {
        let live = LiveSubscriptions::default();
        let mut sub = live.register("test", futures::stream::pending().boxed());
        assert_eq!(live.len(), 1);
        assert!(live.end(&sub.id));
        assert!(sub.messages.next().await.is_none());
        assert!(!live.end(&sub.id), "a second unsubscribe finds nothing");
        drop(sub);
        assert!(live.is_empty());
    }

    #[tokio::test]
    async fn a_backend_stream_that_ends_by_itself_ends_with_unavailable() {
        let live = LiveSubscriptions::default();
        let mut sub = live.register("test", futures::stream::empty().boxed());
        assert!(matches!(
            sub.messages.next().await,
            Some(Err(BackendError::Unavailable(_)))
        ));
        assert!(sub.messages.next().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn poll_until_returns_first_answer_or_empty_at_the_deadline() {
        let mut calls = 0;
        let got = poll_until(Duration::from_secs(1), || {
            calls += 1;
            let n = calls;
            async move { Ok(if n >= 3 { vec![n] } else { vec![] }) }
        })
        .await
        .unwrap();
        assert_eq!(got, vec![3]);
        let start = tokio::time::Instant::now();
        let none: Vec<u8> = poll_until(Duration::from_millis(200), || async { Ok(vec![]) })
            .await
            .unwrap();
        assert!(none.is_empty());
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }
}
