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
use crate::BackendResult;
use crate::backends::driver::envelope;
use crate::backends::fanout::{Connect, Fanout, Listener};
use crate::interfaces::{PubSubBasic, Subscription};

/// The command half of the shared SUBSCRIBE connection.
#[derive(Clone)]
pub(super) struct Sink(redis::aio::PubSubSink);

impl Listener for Sink {
    fn listen(&self, channel: &str) -> BoxFuture<'_, BackendResult<()>> {
        let (mut sink, channel) = (self.0.clone(), channel.to_string());
        Box::pin(async move { sink.subscribe(channel).await.map_err(error) })
    }

    fn unlisten(&self, channel: &str) -> BoxFuture<'_, BackendResult<()>> {
        let (mut sink, channel) = (self.0.clone(), channel.to_string());
        Box::pin(async move { sink.unsubscribe(channel).await.map_err(error) })
    }
}

/// The driver's subscriptions, on connections opened from `client`.
pub(super) fn fanout(client: redis::Client, timeout: Duration) -> Fanout<Sink> {
    let connect: Connect<Sink> = Arc::new(move || {
        let client = client.clone();
        Box::pin(async move {
            let (sink, stream) = client.get_async_pubsub().await.map_err(error)?.split();
            let incoming = stream
                .map(|msg| {
                    let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
                    (msg.get_channel_name().to_string(), payload)
                })
                .boxed();
            Ok((Sink(sink), incoming))
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
    async fn publish(&self, topic: String, payload: Bytes) -> BackendResult<u64> {
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

    async fn subscribe(&self, topic: String) -> BackendResult<Subscription> {
        let messages = self.subscriptions.subscribe(self.channel(&topic), topic).await?;
        Ok(self.live.register("redis", messages))
    }

    async fn unsubscribe(&self, subscription_id: &str) -> BackendResult<bool> {
        Ok(self.live.end(subscription_id))
    }
}
