//! pubsub_basic on PUBLISH/SUBSCRIBE. Payloads travel in the driver's envelope (publish
//! time in front); PUBLISH's answer is the number of subscribers reached.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{Redis, error};
use crate::BackendResult;
use crate::backends::driver::{bounded, envelope};
use crate::interfaces::{PubSubBasic, Subscription};

#[async_trait]
impl PubSubBasic for Redis {
    async fn publish(&self, topic: String, payload: Bytes) -> BackendResult<u64> {
        let channel = self.name("t", topic.as_bytes());
        self.run(
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(envelope::seal(&payload).as_ref())
                .clone(),
        )
        .await
    }

    async fn subscribe(&self, topic: String) -> BackendResult<Subscription> {
        let channel = self.name("t", topic.as_bytes());
        // SUBSCRIBE is confirmed before this returns, so the subscription is live.
        let pubsub = bounded("redis", self.timeout, async {
            let mut pubsub = self.client.get_async_pubsub().await.map_err(error)?;
            pubsub.subscribe(&channel).await.map_err(error)?;
            Ok(pubsub)
        })
        .await?;
        let messages = pubsub
            .into_on_message()
            .map(move |msg| envelope::open(&topic, Bytes::copy_from_slice(msg.get_payload_bytes())))
            .boxed();
        Ok(self.live.register("redis", messages))
    }

    async fn unsubscribe(&self, subscription_id: &str) -> BackendResult<bool> {
        Ok(self.live.end(subscription_id))
    }
}
