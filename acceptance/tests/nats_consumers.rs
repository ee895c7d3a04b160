//! The NATS driver's queue consumers against a real nats-server (a process from
//! ci/install-servers.sh), counted by the server itself: a queue no one receives from
//! loses its JetStream consumer after `queue_inactive_threshold`, so queue names used
//! once do not hold a consumer each forever; its messages wait in the stream and come
//! when it is received from again; a consumer with a delivery out is kept; one deleted
//! by hand is made again; one made with other settings (an earlier config) takes the
//! driver's.
//!
//! A missing nats-server fails under PRISM_ACCEPT_STRICT=1 (CI) and is reported as
//! skipped otherwise.

use std::sync::Arc;
use std::time::Duration;

use acceptance::Instance;
use acceptance::provision::{self, process, specs};
use bytes::Bytes;
use futures::TryStreamExt;
use prism_proxy::backends::nats::NatsConfig;
use prism_proxy::config::BackendConfig;
use prism_proxy::interfaces::QueueBasic;

const THRESHOLD: Duration = Duration::from_secs(2);
/// How long the server may take to act on the threshold: its timers, and a busy machine.
const PATIENCE: Duration = Duration::from_secs(90);

async fn server() -> Option<Instance> {
    if !provision::binary_or_skip(&specs::NATS) {
        return None;
    }
    Some(process::start(&specs::NATS).await.expect("start nats-server"))
}

fn url(instance: &Instance) -> String {
    instance.url.clone().expect("url")
}

async fn queues(instance: &Instance) -> Arc<dyn QueueBasic> {
    queues_with(instance, NatsConfig::new(&url(instance))).await
}

/// The queues of a driver with `config`'s settings (and this file's prefix and threshold
/// unless `config` says otherwise).
async fn queues_with(instance: &Instance, config: NatsConfig) -> Arc<dyn QueueBasic> {
    let defaults = NatsConfig::new(&url(instance));
    let config = BackendConfig::Nats(NatsConfig {
        prefix: "consumers".into(),
        queue_inactive_threshold: if config.queue_inactive_threshold == defaults.queue_inactive_threshold {
            THRESHOLD
        } else {
            config.queue_inactive_threshold
        },
        ..config
    });
    config
        .connect()
        .await
        .expect("driver")
        .queue_basic
        .expect("nats serves queue_basic")
}

/// JetStream, through its own client: the server's view, not the driver's.
async fn jetstream(instance: &Instance) -> async_nats::jetstream::Context {
    let client = async_nats::connect(url(instance)).await.expect("connect nats");
    async_nats::jetstream::new(client)
}

/// Every consumer on the server, by name.
async fn consumers(js: &async_nats::jetstream::Context) -> Vec<String> {
    let streams: Vec<String> = js.stream_names().try_collect().await.expect("stream names");
    let mut all = Vec::new();
    for name in streams {
        let stream = js.get_stream(&name).await.expect("stream");
        let names: Vec<String> = stream.consumer_names().try_collect().await.expect("consumer names");
        all.extend(names);
    }
    all
}

/// Polls until the server holds `n` consumers; false when it has not within PATIENCE.
async fn until_consumers(js: &async_nats::jetstream::Context, n: usize) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if consumers(js).await.len() == n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn receive_one(q: &dyn QueueBasic, queue: &str) -> Option<prism_proxy::interfaces::ReceivedMessage> {
    let mut got = q
        .receive(queue.into(), 1, Duration::from_secs(30), Duration::from_secs(5))
        .await
        .expect("receive");
    got.pop()
}

/// One message through `queue`: enqueued, received and acknowledged.
async fn round_trip(q: &dyn QueueBasic, queue: &str) {
    q.enqueue(queue.into(), Bytes::from("x")).await.expect("enqueue");
    let got = receive_one(q, queue).await.expect("the message enqueued");
    assert!(q.ack(queue.into(), got.receipt).await.expect("ack"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_not_received_from_loses_its_consumer_and_keeps_its_messages() {
    let Some(instance) = server().await else { return };
    let (q, js) = (queues(&instance).await, jetstream(&instance).await);
    round_trip(q.as_ref(), "jobs").await;
    assert_eq!(consumers(&js).await.len(), 1);

    q.enqueue("jobs".into(), Bytes::from("kept")).await.expect("enqueue");
    assert!(
        until_consumers(&js, 0).await,
        "the server kept the consumer of a queue not received from: {:?}",
        consumers(&js).await
    );
    let kept = receive_one(q.as_ref(), "jobs").await;
    assert_eq!(
        kept.as_ref().map(|m| m.payload.clone()),
        Some(Bytes::from("kept")),
        "a message enqueued before the consumer was removed"
    );
    assert_eq!(consumers(&js).await.len(), 1, "the consumer was made again");
    // Nothing else is waiting: the acknowledged message was not brought back.
    assert!(q.ack("jobs".into(), kept.expect("checked").receipt).await.expect("ack"));
    assert!(receive_one(q.as_ref(), "jobs").await.is_none());
}

/// 100 queue names, each used once: the server holds 100 consumers, then none; the
/// driver's handles for them are stale and each is looked up again on its next use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_names_used_once_do_not_hold_consumers() {
    let Some(instance) = server().await else { return };
    let (q, js) = (queues(&instance).await, jetstream(&instance).await);
    for i in 0..100 {
        round_trip(q.as_ref(), &format!("once-{i}")).await;
    }
    assert_eq!(consumers(&js).await.len(), 100);
    assert!(
        until_consumers(&js, 0).await,
        "{} consumers left",
        consumers(&js).await.len()
    );
    q.enqueue("once-7".into(), Bytes::from("again")).await.expect("enqueue");
    let again = receive_one(q.as_ref(), "once-7").await;
    assert_eq!(again.map(|m| m.payload), Some(Bytes::from("again")));
    assert_eq!(consumers(&js).await.len(), 1);
}

/// A delivery out for longer than the threshold (visibility renewed by the driver's
/// progress acks) keeps its consumer: the late ack is accepted and the message is not
/// delivered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_with_a_delivery_out_is_kept() {
    let Some(instance) = server().await else { return };
    let (q, js) = (queues(&instance).await, jetstream(&instance).await);
    q.enqueue("slow".into(), Bytes::from("work")).await.expect("enqueue");
    let got = receive_one(q.as_ref(), "slow").await.expect("message");
    tokio::time::sleep(THRESHOLD * 3).await;
    assert_eq!(consumers(&js).await.len(), 1, "removed with a delivery out");
    assert!(q.ack("slow".into(), got.receipt).await.expect("late ack"));
    assert!(receive_one(q.as_ref(), "slow").await.is_none(), "delivered twice");
}

/// A consumer deleted behind the driver's back (by an operator) is made again: a
/// receive may fail once (UNAVAILABLE, retryable), the next one gets the messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_deleted_by_hand_is_made_again() {
    let Some(instance) = server().await else { return };
    let (q, js) = (queues(&instance).await, jetstream(&instance).await);
    round_trip(q.as_ref(), "ops").await;
    let streams: Vec<String> = js.stream_names().try_collect().await.expect("streams");
    let stream = js.get_stream(&streams[0]).await.expect("stream");
    let name = consumers(&js).await.pop().expect("one consumer");
    stream.delete_consumer(&name).await.expect("delete by hand");
    q.enqueue("ops".into(), Bytes::from("two")).await.expect("enqueue");
    let first_try = q
        .receive("ops".into(), 1, Duration::from_secs(30), Duration::from_secs(2))
        .await;
    eprintln!("first receive after the delete: {first_try:?}");
    let two = match &first_try {
        Ok(got) if !got.is_empty() => got.first().cloned(),
        Ok(_) => receive_one(q.as_ref(), "ops").await,
        Err(e) => {
            assert!(e.retryable(), "{e:?}");
            receive_one(q.as_ref(), "ops").await
        }
    };
    assert_eq!(
        two.map(|m| m.payload),
        Some(Bytes::from("two")),
        "first try: {first_try:?}"
    );
}

/// A driver started with another `ack_wait`, then one with another
/// `queue_inactive_threshold` (a changed config, a new version), each finds the queue's
/// consumer made with the old settings and updates it: the server then holds the new
/// ones. A mutant keeping the old consumer passed every case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_made_with_other_settings_takes_the_drivers() {
    let Some(instance) = server().await else { return };
    let js = jetstream(&instance).await;
    let server_config = || async {
        let streams: Vec<String> = js.stream_names().try_collect().await.expect("streams");
        let stream = js.get_stream(&streams[0]).await.expect("stream");
        let name = consumers(&js).await.pop().expect("one consumer");
        let mut consumer: async_nats::jetstream::consumer::PullConsumer =
            stream.get_consumer(&name).await.expect("the consumer");
        consumer.info().await.expect("consumer info").config.clone()
    };
    round_trip(queues(&instance).await.as_ref(), "settings").await;
    let base = NatsConfig::new(&url(&instance));
    let ack_wait = base.ack_wait * 2;
    let new_ack_wait = NatsConfig {
        ack_wait,
        ..base.clone()
    };
    round_trip(queues_with(&instance, new_ack_wait).await.as_ref(), "settings").await;
    assert_eq!(server_config().await.ack_wait, ack_wait, "the consumer's ack_wait");
    let threshold = THRESHOLD * 5;
    let new_threshold = NatsConfig {
        ack_wait,
        queue_inactive_threshold: threshold,
        ..base
    };
    round_trip(queues_with(&instance, new_threshold).await.as_ref(), "settings").await;
    let config = server_config().await;
    assert_eq!(
        (config.ack_wait, config.inactive_threshold),
        (ack_wait, threshold),
        "the consumer's ack_wait and inactive_threshold"
    );
}
