//! pubsub_basic on LISTEN/NOTIFY. Every subscription of the driver shares one LISTEN
//! connection (`backends::fanout`), read eagerly so the server's NOTIFY queue never fills
//! behind a slow subscriber; payloads travel base64-encoded in the driver's envelope,
//! since NOTIFY carries text of at most 8000 bytes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio_postgres::AsyncMessage;
use tokio_stream::wrappers::ReceiverStream;

use super::{MAX_PUBSUB_PAYLOAD, Postgres, error};
use crate::backends::driver::envelope;
use crate::backends::fanout::{Connect, Fanout, Listener};
use crate::interfaces::{Message, PubSubBasic, Subscription};
use crate::{BackendError, BackendResult};

/// Longest channel name PostgreSQL keeps (longer identifiers are cut short).
const MAX_CHANNEL: usize = 63;

impl Postgres {
    /// The channel for `topic`: the prefixed name when it fits, else a hash of it.
    fn channel(&self, topic: &str) -> String {
        let name = format!("{}{topic}", self.prefix);
        if name.len() <= MAX_CHANNEL {
            name
        } else {
            // FNV-1a: stable across processes and Rust versions, unlike std's hasher.
            let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            format!("prism-h-{hash:016x}")
        }
    }
}

/// The command half of the shared LISTEN connection.
#[derive(Clone)]
pub(super) struct Listen(Arc<tokio_postgres::Client>);

impl Listener for Listen {
    fn listen(&self, channel: &str) -> BoxFuture<'_, BackendResult<()>> {
        let sql = format!("LISTEN {}", quote_ident(channel));
        Box::pin(async move { self.0.batch_execute(&sql).await.map_err(error) })
    }

    fn unlisten(&self, channel: &str) -> BoxFuture<'_, BackendResult<()>> {
        let sql = format!("UNLISTEN {}", quote_ident(channel));
        Box::pin(async move { self.0.batch_execute(&sql).await.map_err(error) })
    }

    /// On the listening connection itself: PostgreSQL delivers a session's own
    /// notifications to it, in commit order with everyone else's. (The alias names the
    /// statement in `pg_stat_activity`, apart from publishes.)
    fn mark(&self, channel: &str, mark: u64) -> BoxFuture<'_, BackendResult<()>> {
        let (channel, mark) = (channel.to_string(), mark.to_string());
        Box::pin(async move {
            self.0
                .execute("SELECT pg_notify($1, $2) AS prism_barrier", &[&channel, &mark])
                .await
                .map(drop)
                .map_err(error)
        })
    }
}

/// The driver's subscriptions, on connections made from `config`.
pub(super) fn fanout(config: tokio_postgres::Config, timeout: Duration) -> Fanout<Listen> {
    let connect: Connect<Listen> = Arc::new(move || {
        let config = config.clone();
        Box::pin(async move {
            let (client, mut connection) = config.connect(tokio_postgres::NoTls).await.map_err(error)?;
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            // Forwards notifications as they come (the fan-out reads them at once); ends
            // with the connection, which ends every subscription.
            tokio::spawn(async move {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(Ok(message)) = messages.next().await {
                    if let AsyncMessage::Notification(n) = message
                        && tx
                            .send((n.channel().to_string(), Bytes::from(n.payload().to_string())))
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            });
            Ok((Listen(Arc::new(client)), ReceiverStream::new(rx).boxed()))
        })
    });
    Fanout::new("postgres", timeout, connect, decode)
}

/// A message from a NOTIFY payload: base64 of the envelope.
fn decode(topic: &str, text: Bytes) -> Result<Message, BackendError> {
    let sealed = STANDARD
        .decode(&text)
        .map_err(|e| BackendError::Internal(format!("a NOTIFY payload on {topic} is not base64: {e}")))?;
    envelope::open(topic, Bytes::from(sealed))
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[async_trait]
impl PubSubBasic for Postgres {
    async fn publish(&self, topic: String, payload: Bytes) -> Result<u64, BackendError> {
        if payload.len() > MAX_PUBSUB_PAYLOAD {
            return Err(BackendError::InvalidArgument {
                field: "payload".into(),
                message: format!(
                    "{} bytes is over what PostgreSQL NOTIFY carries for this driver",
                    payload.len()
                ),
                limit: Some(format!("max_payload_bytes={MAX_PUBSUB_PAYLOAD}")),
            });
        }
        let text = STANDARD.encode(envelope::seal(&payload));
        self.query("SELECT pg_notify($1, $2)", &[&self.channel(&topic), &text])
            .await?;
        // NOTIFY does not say how many listeners there were.
        Ok(0)
    }

    async fn subscribe(&self, topic: String) -> Result<Subscription, BackendError> {
        let messages = self.subscriptions.subscribe(self.channel(&topic), topic).await?;
        Ok(self.live.register("postgres", messages))
    }

    async fn unsubscribe(&self, subscription_id: &str) -> Result<bool, BackendError> {
        Ok(self.live.end(subscription_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
