//! pubsub_basic on LISTEN/NOTIFY. Each subscription holds its own connection; payloads
//! travel base64-encoded in the driver's envelope, since NOTIFY carries text of at most
//! 8000 bytes.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures::StreamExt;
use tokio_postgres::AsyncMessage;
use tokio_stream::wrappers::ReceiverStream;

use super::{MAX_PUBSUB_PAYLOAD, Postgres, error};
use crate::backends::driver::{bounded, envelope};
use crate::interfaces::{PubSubBasic, Subscription};
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

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[async_trait]
impl PubSubBasic for Postgres {
    async fn publish(&self, topic: String, payload: Bytes) -> BackendResult<u64> {
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

    async fn subscribe(&self, topic: String) -> BackendResult<Subscription> {
        let channel = self.channel(&topic);
        let (client, mut connection) = bounded("postgres", self.timeout, async {
            self.pg_config.connect(tokio_postgres::NoTls).await.map_err(error)
        })
        .await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<String>(1024);
        // The connection task forwards notifications; it ends with the connection, which
        // ends the subscription's stream.
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(Ok(message)) = messages.next().await {
                if let AsyncMessage::Notification(n) = message
                    && tx.send(n.payload().to_string()).await.is_err()
                {
                    break;
                }
            }
        });
        bounded("postgres", self.timeout, async {
            client
                .batch_execute(&format!("LISTEN {}", quote_ident(&channel)))
                .await
                .map_err(error)
        })
        .await?;
        let messages = ReceiverStream::new(rx)
            .map(move |text| {
                // The client lives as long as the stream: dropping it closes the connection.
                let _ = &client;
                let sealed = STANDARD
                    .decode(text.as_bytes())
                    .map_err(|e| BackendError::Internal(format!("a NOTIFY payload on {topic} is not base64: {e}")))?;
                envelope::open(&topic, Bytes::from(sealed))
            })
            .boxed();
        Ok(self.live.register("postgres", messages))
    }

    async fn unsubscribe(&self, subscription_id: &str) -> BackendResult<bool> {
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
