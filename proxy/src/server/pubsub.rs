//! gRPC service of pubsub_basic.

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use prism_proto::pubsub::v1::{self as pb, pub_sub_basic_server, subscribe_response::Event};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::Router;
use crate::Operation;
use crate::wire;

pub struct PubSubService {
    router: Arc<Router>,
    /// Cancelled when the proxy drains, ending every subscription stream.
    shutdown: CancellationToken,
}

impl PubSubService {
    pub fn new(router: Arc<Router>, shutdown: CancellationToken) -> PubSubService {
        PubSubService { router, shutdown }
    }
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<pb::SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pub_sub_basic_server::PubSubBasic for PubSubService {
    async fn publish(&self, request: Request<pb::PublishRequest>) -> Result<Response<pb::PublishResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::PubsubPublish,
                |b| &b.pubsub_basic,
                |pubsub, limits, req| async move {
                    limits.check_name("topic", &req.topic)?;
                    limits.check_value("payload", &req.payload)?;
                    Ok(pb::PublishResponse {
                        delivered_to: pubsub.publish(req.topic, req.payload).await?,
                    })
                },
            )
            .await
    }

    type SubscribeStream = SubscribeStream;

    async fn subscribe(&self, request: Request<pb::SubscribeRequest>) -> Result<Response<SubscribeStream>, Status> {
        let (ns, pubsub, req) = self
            .router
            .route(request, Operation::PubsubSubscribe, |b| &b.pubsub_basic)?;
        let limits = ns.limits;
        let subscription = ns
            .run(Operation::PubsubSubscribe, async move {
                limits.check_name("topic", &req.topic)?;
                pubsub.subscribe(req.topic).await
            })
            .await?
            .into_inner();
        let subscribed = pb::SubscribeResponse {
            event: Some(Event::Subscribed(pb::Subscribed {
                subscription_id: subscription.id,
            })),
        };
        // The stream holds the call, and with it the subscription's place in the namespace.
        let messages = super::subscription::buffered(subscription.messages, ns.namespace()).map(move |item| {
            let _place = &ns;
            item.map(|message| pb::SubscribeResponse {
                event: Some(Event::Message(wire::message_to_proto(message))),
            })
        });
        let stream = futures::stream::once(async { Ok(subscribed) })
            .chain(messages)
            .take_until(self.shutdown.clone().cancelled_owned());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn unsubscribe(
        &self,
        request: Request<pb::UnsubscribeRequest>,
    ) -> Result<Response<pb::UnsubscribeResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::PubsubUnsubscribe,
                |b| &b.pubsub_basic,
                |pubsub, limits, req| async move {
                    limits.check_name("subscription_id", &req.subscription_id)?;
                    Ok(pb::UnsubscribeResponse {
                        existed: pubsub.unsubscribe(&req.subscription_id).await?,
                    })
                },
            )
            .await
    }
}
