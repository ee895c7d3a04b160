//! pubsub_basic on core NATS: at-most-once fan-out to the live subscribers. Payloads
//! travel in the driver's envelope.

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use super::{Nats, error, token};
use crate::BackendError;
use crate::backends::driver::{bounded, envelope};
use crate::interfaces::{PubSubBasic, Subscription};

impl Nats {
    fn topic_subject(&self, topic: &str) -> String {
        format!("prism.t.{}", token(&format!("{}{topic}", self.prefix)))
    }
}

#[async_trait]
impl PubSubBasic for Nats {
    async fn publish(&self, topic: String, payload: Bytes) -> Result<u64, BackendError> {
        let subject = self.topic_subject(&topic);
        bounded("nats", self.timeout, async {
            self.client
                .publish(subject, envelope::seal(&payload))
                .await
                .map_err(|e| error("publish", e))?;
            // Flushed, so the message has left the proxy when the caller hears back.
            self.client.flush().await.map_err(|e| error("flush", e))
        })
        .await?;
        // Core NATS does not say how many subscribers there were.
        Ok(0)
    }

    async fn subscribe(&self, topic: String) -> Result<Subscription, BackendError> {
        let subject = self.topic_subject(&topic);
        let subscriber = bounded("nats", self.timeout, async {
            let subscriber = self
                .client
                .subscribe(subject)
                .await
                .map_err(|e| error("subscribe", e))?;
            // The server has the subscription once the flush returns: it is live.
            self.client.flush().await.map_err(|e| error("flush", e))?;
            Ok(subscriber)
        })
        .await?;
        let messages = subscriber.map(move |m| envelope::open(&topic, m.payload)).boxed();
        Ok(self.live.register("nats", messages))
    }

    async fn unsubscribe(&self, subscription_id: &str) -> Result<bool, BackendError> {
        Ok(self.live.end(subscription_id))
    }
}
