//! The buffer between a backend's subscription and its gRPC subscriber. A task reads the
//! backend eagerly (so no backend client library, socket or server-side queue fills up
//! behind a slow reader) into a buffer bounded by the namespace's
//! `max_subscriber_buffer` messages and `max_subscriber_buffer_bytes` bytes. A subscriber
//! that lets it fill is ended with RESOURCE_EXHAUSTED "slow consumer" (and counted in
//! `prism_slow_consumers_total`); its backlog is dropped at once.

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use super::namespace::Namespace;
use crate::interfaces::Message;
use crate::status::to_status;
use crate::{BackendError, BackendResult};

/// Bytes a message is charged beyond its payload: topic, timestamps and framing.
const MESSAGE_OVERHEAD: usize = 64;

/// `messages` through a bounded buffer, ending with "slow consumer" when it fills; also
/// ends (and stops reading the backend) when the returned stream is dropped.
pub(crate) fn buffered(
    messages: BoxStream<'static, BackendResult<Message>>,
    ns: &Arc<Namespace>,
) -> impl Stream<Item = Result<Message, Status>> + Send + 'static {
    let limits = ns.limits;
    let (tx, rx) = mpsc::channel(limits.max_subscriber_buffer as usize);
    let bytes = Arc::new(Semaphore::new(limits.max_subscriber_buffer_bytes as usize));
    let slow = CancellationToken::new();
    tokio::spawn(pump(messages, tx, bytes, slow.clone(), ns.clone()));
    // The state travels with the stream, so nothing is cloned per message.
    futures::stream::unfold(Some((rx, slow, ns.name.clone())), move |state| async move {
        let (mut rx, slow, namespace) = state?;
        let item = tokio::select! {
            biased;
            () = slow.cancelled() => None,
            item = rx.recv() => item,
        };
        match item {
            Some((item, _charge)) => Some((item, Some((rx, slow, namespace)))),
            None if slow.is_cancelled() => Some((Err(slow_consumer(&namespace, limits)), None)),
            None => None,
        }
    })
}

type Buffered = (Result<Message, Status>, Option<OwnedSemaphorePermit>);

/// Moves messages from the backend into the buffer until the backend ends, the
/// subscriber leaves, or the buffer is full.
async fn pump(
    mut messages: BoxStream<'static, BackendResult<Message>>,
    tx: mpsc::Sender<Buffered>,
    bytes: Arc<Semaphore>,
    slow: CancellationToken,
    ns: Arc<Namespace>,
) {
    loop {
        let item = tokio::select! {
            () = tx.closed() => return,
            item = messages.next() => item,
        };
        let Some(item) = item else { return };
        let (item, charge) = match item {
            Ok(message) => {
                // A message alone always fits (validation keeps the buffer >= max_value_bytes).
                let size = (message.payload.len() + message.topic.len() + MESSAGE_OVERHEAD)
                    .min(ns.limits.max_subscriber_buffer_bytes as usize) as u32;
                match bytes.clone().try_acquire_many_owned(size) {
                    Ok(charge) => (Ok(message), Some(charge)),
                    Err(_) => break,
                }
            }
            Err(e) => {
                // The backend's last word (connection lost): the subscriber gets it after
                // what is buffered.
                let _ = tx.try_send((Err(to_status(&e, Some(&ns.name))), None));
                return;
            }
        };
        match tx.try_send((item, charge)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => break,
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
    ns.metrics.slow_consumers.inc();
    tracing::info!(namespace = %ns.name, "subscription ended: slow consumer (its buffer filled)");
    slow.cancel();
}

fn slow_consumer(namespace: &str, limits: crate::Limits) -> Status {
    let err = BackendError::Overloaded(format!(
        "slow consumer: the subscriber fell behind by its buffer of {} messages or {} bytes (max_subscriber_buffer, max_subscriber_buffer_bytes); subscription ended",
        limits.max_subscriber_buffer, limits.max_subscriber_buffer_bytes
    ));
    to_status(&err, Some(namespace))
}
