//! pubsub_basic on PUBLISH/SUBSCRIBE. Payloads travel in the driver's envelope (publish
//! time in front); PUBLISH's answer is the number of server-side subscribers reached
//! (each proxy counts once per channel, as its subscribers share one connection).

use async_trait::async_trait;
use bytes::Bytes;

use super::Redis;
use crate::BackendResult;
use crate::backends::driver::envelope;
use crate::interfaces::{PubSubBasic, Subscription};

#[async_trait]
impl PubSubBasic for Redis {
    async fn publish(&self, topic: String, payload: Bytes) -> BackendResult<u64> {
        let channel = self.name("t", topic.as_bytes());
        let reached: u64 = self
            .run(
                redis::cmd("PUBLISH")
                    .arg(channel.as_slice())
                    .arg(envelope::seal(&payload).as_ref())
                    .clone(),
            )
            .await?;
        // The server counted this driver's shared connection once; count its subscribers.
        Ok(match self.subscriptions.local(&channel) {
            Some(local) => reached.saturating_sub(1) + local as u64,
            None => reached,
        })
    }

    async fn subscribe(&self, topic: String) -> BackendResult<Subscription> {
        let channel = self.name("t", topic.as_bytes());
        // On the driver's one subscription connection; live once this returns.
        let messages = self.subscriptions.subscribe(channel, topic).await?;
        Ok(self.live.register("redis", messages))
    }

    async fn unsubscribe(&self, subscription_id: &str) -> BackendResult<bool> {
        Ok(self.live.end(subscription_id))
    }
}
