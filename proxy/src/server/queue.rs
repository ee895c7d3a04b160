//! gRPC service of queue_basic.

use std::sync::Arc;
use std::time::Duration;

use prism_proto::queue::v1::{self as pb, queue_basic_server};
use tonic::{Request, Response, Status};

use super::Router;
use crate::Operation;
use crate::interfaces::ReceivedMessage;
use crate::{BackendError, wire};

/// Longest a receive may wait for a message, so a client cannot pin a permit forever.
const MAX_WAIT: Duration = Duration::from_secs(20);
/// Longest visibility timeout: 12 hours, as the common cloud queues allow.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

pub struct QueueService {
    router: Arc<Router>,
}

impl QueueService {
    pub fn new(router: Arc<Router>) -> QueueService {
        QueueService { router }
    }
}

fn bounded(field: &str, ms: u64, max: Duration) -> Result<Duration, BackendError> {
    let d = Duration::from_millis(ms);
    if d > max {
        return Err(BackendError::InvalidArgument {
            field: field.into(),
            message: format!("{ms} ms is over the limit of {} ms", max.as_millis()),
            limit: Some(format!("{field}={}", max.as_millis())),
        });
    }
    Ok(d)
}

#[tonic::async_trait]
impl queue_basic_server::QueueBasic for QueueService {
    async fn enqueue(&self, request: Request<pb::EnqueueRequest>) -> Result<Response<pb::EnqueueResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::QueueEnqueue,
                |b| &b.queue_basic,
                |queue, limits, req| async move {
                    limits.check_name("queue", &req.queue)?;
                    limits.check_value("payload", &req.payload)?;
                    Ok(pb::EnqueueResponse {
                        message_id: queue.enqueue(req.queue, req.payload).await?,
                    })
                },
            )
            .await
    }

    async fn receive(&self, request: Request<pb::ReceiveRequest>) -> Result<Response<pb::ReceiveResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::QueueReceive,
                |b| &b.queue_basic,
                |queue, limits, req| async move {
                    limits.check_name("queue", &req.queue)?;
                    if req.max_messages as usize > limits.max_batch_entries as usize {
                        limits.check_batch("max_messages", req.max_messages as usize)?;
                    }
                    let visibility = bounded("visibility_timeout_ms", req.visibility_timeout_ms, MAX_VISIBILITY)?;
                    let wait = bounded("wait_ms", req.wait_ms, MAX_WAIT)?;
                    let received = queue
                        .receive(req.queue.clone(), req.max_messages, visibility, wait)
                        .await?;
                    let (messages, rest) = fitting(received, limits.response_limit().1 as usize);
                    // What does not fit in one response goes back to the queue at once.
                    for message in rest {
                        queue.nack(req.queue.clone(), message.receipt).await?;
                    }
                    Ok(pb::ReceiveResponse { messages })
                },
            )
            .await
    }

    async fn ack(&self, request: Request<pb::AckRequest>) -> Result<Response<pb::AckResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::QueueAck,
                |b| &b.queue_basic,
                |queue, limits, req| async move {
                    limits.check_name("queue", &req.queue)?;
                    limits.check_name("receipt", &req.receipt)?;
                    Ok(pb::AckResponse {
                        acknowledged: queue.ack(req.queue, req.receipt).await?,
                    })
                },
            )
            .await
    }

    async fn nack(&self, request: Request<pb::NackRequest>) -> Result<Response<pb::NackResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::QueueNack,
                |b| &b.queue_basic,
                |queue, limits, req| async move {
                    limits.check_name("queue", &req.queue)?;
                    limits.check_name("receipt", &req.receipt)?;
                    Ok(pb::NackResponse {
                        requeued: queue.nack(req.queue, req.receipt).await?,
                    })
                },
            )
            .await
    }
}

/// The messages that fit in a response of `max_bytes` (the first always does: a payload is
/// at most `max_value_bytes`, which the limits keep below `max_response_bytes`), and the
/// rest.
fn fitting(received: Vec<ReceivedMessage>, max_bytes: usize) -> (Vec<pb::ReceivedMessage>, Vec<pb::ReceivedMessage>) {
    let (mut fit, mut rest, mut bytes) = (Vec::new(), Vec::new(), 0usize);
    for message in received.into_iter().map(wire::received_to_proto) {
        let size = prost::encoding::message::encoded_len(1, &message);
        if fit.is_empty() || (rest.is_empty() && bytes + size <= max_bytes) {
            bytes += size;
            fit.push(message);
        } else {
            rest.push(message);
        }
    }
    (fit, rest)
}
