//! pubsub_basic on PUBLISH/SUBSCRIBE. Payloads travel in the driver's envelope (publish
//! time in front). Every subscription of the driver shares one SUBSCRIBE connection
//! (`backends::fanout`); PUBLISH's answer counts that connection once, so the driver adds
//! its own subscribers of the channel instead.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;

use super::{Redis, error};
use crate::backends::driver::envelope;
use crate::backends::fanout::{Connect, Fanout, Listener};
use crate::interfaces::{PubSubBasic, Subscription};
use crate::{BackendError, BackendResult};

/// The command half of the shared SUBSCRIBE connection, and the driver's command
/// connection for the barrier marks (a subscribed connection cannot PUBLISH).
#[derive(Clone)]
pub(super) struct Sink(redis::aio::PubSubSink, redis::aio::ConnectionManager);

impl Listener for Sink {
    fn listen(&self, channel: &str) -> BoxFuture<'_, BackendResult<()>> {
        let (mut sink, channel) = (self.0.clone(), channel.to_string());
        Box::pin(async move { sink.subscribe(channel).await.map_err(error) })
    }

    fn unlisten(&self, channel: &str) -> BoxFuture<'_, BackendResult<()>> {
        let (mut sink, channel) = (self.0.clone(), channel.to_string());
        Box::pin(async move { sink.unsubscribe(channel).await.map_err(error) })
    }

    fn mark(&self, channel: &str, mark: u64) -> BoxFuture<'_, BackendResult<()>> {
        let (mut conn, channel) = (self.1.clone(), channel.to_string());
        Box::pin(async move {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(mark)
                .query_async::<u64>(&mut conn)
                .await
                .map(drop)
                .map_err(error)
        })
    }
}

/// The driver's subscriptions, on connections opened from `client`; barrier marks go
/// over `commands`.
pub(super) fn fanout(
    client: redis::Client,
    commands: redis::aio::ConnectionManager,
    timeout: Duration,
) -> Fanout<Sink> {
    let connect: Connect<Sink> = Arc::new(move || {
        let (client, marks) = (client.clone(), commands.clone());
        Box::pin(async move {
            let (sink, stream) = client.get_async_pubsub().await.map_err(error)?.split();
            let incoming = stream
                .map(|msg| {
                    let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
                    (msg.get_channel_name().to_string(), payload)
                })
                .boxed();
            Ok((Sink(sink, marks), incoming))
        })
    });
    Fanout::new("redis", timeout, connect, envelope::open)
}

impl Redis {
    fn channel(&self, topic: &str) -> String {
        String::from_utf8_lossy(&self.name("t", topic.as_bytes())).into_owned()
    }
}

#[async_trait]
impl PubSubBasic for Redis {
    async fn publish(&self, topic: String, payload: Bytes) -> Result<u64, BackendError> {
        let channel = self.channel(&topic);
        let reached: u64 = self
            .run(
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(envelope::seal(&payload).as_ref())
                    .clone(),
            )
            .await?;
        Ok(match self.subscriptions.local(&channel) {
            Some(local) => reached.saturating_sub(1) + local as u64,
            None => reached,
        })
    }

    async fn subscribe(&self, topic: String) -> Result<Subscription, BackendError> {
        let messages = self.subscriptions.subscribe(self.channel(&topic), topic).await?;
        Ok(self.live.register("redis", messages))
    }

    async fn unsubscribe(&self, subscription_id: &str) -> Result<bool, BackendError> {
        Ok(self.live.end(subscription_id))
    }
}
