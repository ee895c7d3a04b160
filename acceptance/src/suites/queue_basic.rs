//! queue_basic: at-least-once delivery with visibility timeouts, in real time.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::ensure;
use bytes::Bytes;
use prism_proxy::Interface;
use prism_proxy::interfaces::{QueueBasic, ReceivedMessage};

use super::{Case, CaseResult, Subject, b};
use crate::{Capability, case};

const SHORT_VIS: Duration = Duration::from_millis(500);
const LONG_VIS: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(3);

pub fn cases() -> Vec<Case> {
    let i = Interface::QueueBasic;
    vec![
        case!(i, received_message_is_invisible_until_timeout),
        case!(i, unacked_message_comes_back_after_visibility_timeout),
        case!(i, ack_is_final),
        case!(i, stale_receipt_is_refused_and_the_message_stays),
        case!(i, ack_after_visibility_timeout_is_refused),
        case!(i, nack_redelivers),
        case!(i, consumer_that_dies_loses_nothing),
        case!(i, queues_keep_their_own_visibility),
        case!(i, a_waiting_receive_gets_a_message_enqueued_meanwhile),
        case!(i, delivery_count_increments, needs: [Capability::QueueDeliveryCount]),
        case!(i, model_random_sequences),
    ]
}

async fn received_message_is_invisible_until_timeout(s: Subject) -> CaseResult {
    let q = s.queue()?;
    let name = s.name("q");
    q.enqueue(name.clone(), b("m")).await?;
    let got = q.receive(name.clone(), 10, LONG_VIS, WAIT).await?;
    ensure!(got.len() == 1 && got[0].payload == b("m"), "first receive got {got:?}");
    let again = q.receive(name, 10, LONG_VIS, Duration::from_millis(300)).await?;
    ensure!(again.is_empty(), "an in-flight message was delivered again: {again:?}");
    Ok(())
}

/// Enqueues `m` on `name`, receives it with the short visibility timeout and lets that
/// timeout pass: the delivery it returns is over.
async fn delivered_then_expired(q: &dyn QueueBasic, name: &str) -> anyhow::Result<ReceivedMessage> {
    q.enqueue(name.to_string(), b("m")).await?;
    let mut first = q.receive(name.to_string(), 1, SHORT_VIS, WAIT).await?;
    ensure!(first.len() == 1, "first receive got {first:?}");
    tokio::time::sleep(SHORT_VIS + Duration::from_millis(200)).await;
    Ok(first.remove(0))
}

async fn unacked_message_comes_back_after_visibility_timeout(s: Subject) -> CaseResult {
    let q = s.queue()?;
    let name = s.name("q");
    let first = delivered_then_expired(q.as_ref(), &name).await?;
    let again = q.receive(name, 1, LONG_VIS, WAIT).await?;
    ensure!(
        again.len() == 1 && again[0].payload == b("m"),
        "not redelivered: {again:?}"
    );
    ensure!(
        again[0].message_id == first.message_id,
        "redelivery has the same message id"
    );
    Ok(())
}

async fn ack_is_final(s: Subject) -> CaseResult {
    let q = s.queue()?;
    let name = s.name("q");
    q.enqueue(name.clone(), b("m")).await?;
    let got = q.receive(name.clone(), 1, SHORT_VIS, WAIT).await?;
    ensure!(got.len() == 1, "receive got {got:?}");
    ensure!(
        q.ack(name.clone(), got[0].receipt.clone()).await?,
        "ack of a fresh receipt reports true"
    );
    tokio::time::sleep(SHORT_VIS + Duration::from_millis(200)).await;
    let again = q.receive(name, 10, LONG_VIS, Duration::from_millis(300)).await?;
    ensure!(again.is_empty(), "an acked message came back: {again:?}");
    Ok(())
}

/// A receipt from an earlier delivery names a delivery that is over: acking or nacking
/// it is refused, and the message stays with its current receiver.
async fn stale_receipt_is_refused_and_the_message_stays(s: Subject) -> CaseResult {
    let q = s.queue()?;
    let name = s.name("q");
    let first = delivered_then_expired(q.as_ref(), &name).await?;
    let second = q.receive(name.clone(), 1, LONG_VIS, WAIT).await?;
    ensure!(second.len() == 1, "not redelivered: {second:?}");
    ensure!(
        second[0].receipt != first.receipt,
        "a redelivery must carry a new receipt (both {:?})",
        first.receipt
    );
    ensure!(
        !q.ack(name.clone(), first.receipt.clone()).await?,
        "ack with the first delivery's receipt, after the message was delivered again, reported true"
    );
    ensure!(
        !q.nack(name.clone(), first.receipt.clone()).await?,
        "nack with a stale receipt reported true"
    );
    let meanwhile = q.receive(name.clone(), 1, LONG_VIS, Duration::from_millis(300)).await?;
    ensure!(
        meanwhile.is_empty(),
        "the stale nack made the message visible again: {meanwhile:?}"
    );
    ensure!(
        q.ack(name.clone(), second[0].receipt.clone()).await?,
        "the current receipt no longer acks: the stale one removed the message"
    );
    Ok(())
}

/// Past its visibility timeout a receipt has expired, even if nobody received the
/// message since: the ack is refused and the message is delivered again.
async fn ack_after_visibility_timeout_is_refused(s: Subject) -> CaseResult {
    let q = s.queue()?;
    let name = s.name("q");
    let first = delivered_then_expired(q.as_ref(), &name).await?;
    ensure!(
        !q.ack(name.clone(), first.receipt.clone()).await?,
        "ack after the visibility timeout reported true"
    );
    let again = q.receive(name, 1, LONG_VIS, WAIT).await?;
    ensure!(
        again.len() == 1 && again[0].payload == b("m"),
        "the message was lost by a refused ack: {again:?}"
    );
    Ok(())
}

async fn nack_redelivers(s: Subject) -> CaseResult {
    let q = s.queue()?;
    let name = s.name("q");
    q.enqueue(name.clone(), b("m")).await?;
    let got = q.receive(name.clone(), 1, LONG_VIS, WAIT).await?;
    ensure!(got.len() == 1, "receive got {got:?}");
    ensure!(
        q.nack(name.clone(), got[0].receipt.clone()).await?,
        "nack of a fresh receipt reports true"
    );
    let again = q.receive(name, 1, LONG_VIS, WAIT).await?;
    ensure!(
        again.len() == 1 && again[0].payload == b("m"),
        "nacked message not redelivered: {again:?}"
    );
    Ok(())
}

async fn consumer_that_dies_loses_nothing(s: Subject) -> CaseResult {
    let q = s.queue()?;
    let name = s.name("q");
    let sent: BTreeSet<Bytes> = (0..20).map(|i| Bytes::from(format!("m{i}"))).collect();
    for m in &sent {
        q.enqueue(name.clone(), m.clone()).await?;
    }
    // A consumer takes some messages and dies without acking.
    let taken = q.receive(name.clone(), 8, SHORT_VIS, WAIT).await?;
    ensure!(!taken.is_empty(), "the doomed consumer got nothing");
    // Another consumer must end up with all twenty.
    let mut done = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while done.len() < sent.len() && tokio::time::Instant::now() < deadline {
        for m in q.receive(name.clone(), 10, LONG_VIS, Duration::from_secs(1)).await? {
            ensure!(q.ack(name.clone(), m.receipt).await?, "ack failed");
            done.insert(m.payload);
        }
    }
    ensure!(done == sent, "lost {:?}", sent.difference(&done).collect::<Vec<_>>());
    Ok(())
}

/// Up to `n` messages of `name`, received with `visibility`, in as many receives as it takes.
async fn receive_n(
    q: &dyn QueueBasic,
    name: &str,
    n: usize,
    visibility: Duration,
) -> anyhow::Result<Vec<ReceivedMessage>> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while got.len() < n && tokio::time::Instant::now() < deadline {
        got.extend(
            q.receive(name.to_string(), (n - got.len()) as u32, visibility, WAIT)
                .await?,
        );
    }
    Ok(got)
}

/// Two queues filled alternately, so a backend that numbers messages per queue gives both
/// the same ids: one queue's short visibility must not end the other's long one. A Redis
/// driver keeping every queue's deadlines in one hash keyed by message id passed every
/// other case (cargo-mutants, `ci/mutants.sh`).
async fn queues_keep_their_own_visibility(s: Subject) -> CaseResult {
    let q = s.queue()?;
    let (long, short) = (s.name("long"), s.name("short"));
    for i in 0..10 {
        q.enqueue(long.clone(), Bytes::from(format!("l{i}"))).await?;
        q.enqueue(short.clone(), Bytes::from(format!("s{i}"))).await?;
    }
    let held = receive_n(q.as_ref(), &long, 10, LONG_VIS).await?;
    ensure!(held.len() == 10, "received {} of the 10 long messages", held.len());
    let expiring = receive_n(q.as_ref(), &short, 10, SHORT_VIS).await?;
    ensure!(
        expiring.len() == 10,
        "received {} of the 10 short messages",
        expiring.len()
    );
    tokio::time::sleep(SHORT_VIS * 2).await;
    let back = receive_n(q.as_ref(), &short, 10, LONG_VIS).await?;
    ensure!(
        back.len() == 10,
        "{} of the 10 short-visibility messages came back",
        back.len()
    );
    let early = q
        .receive(long.clone(), 10, LONG_VIS, Duration::from_millis(300))
        .await?;
    ensure!(
        early.is_empty(),
        "messages of the other queue came back before their visibility of {LONG_VIS:?}: {:?}",
        early.iter().map(|m| &m.payload).collect::<Vec<_>>()
    );
    for m in held {
        ensure!(q.ack(long.clone(), m.receipt).await?, "ack of {:?} refused", m.payload);
    }
    Ok(())
}

/// A receive on an empty queue waits (up to its `wait`) and returns the message enqueued
/// while it waits, also after another receive of the same queue gave up beside it.
/// Memstore mutants that gave up at once, or forgot the queue when the shorter receive
/// ended, passed every other case.
async fn a_waiting_receive_gets_a_message_enqueued_meanwhile(s: Subject) -> CaseResult {
    let q = s.queue()?;
    let name = s.name("q");
    let receive = |wait: Duration| {
        let (q, name) = (q.clone(), name.clone());
        tokio::spawn(async move { q.receive(name, 1, LONG_VIS, wait).await })
    };
    let (waiting, brief) = (receive(Duration::from_secs(10)), receive(Duration::from_millis(100)));
    let gave_up = brief.await??;
    ensure!(gave_up.is_empty(), "a receive of an empty queue returned {gave_up:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    q.enqueue(name.clone(), b("late")).await?;
    let got = waiting.await??;
    ensure!(
        got.len() == 1 && got[0].payload == b("late"),
        "the waiting receive returned {got:?}, not the message enqueued while it waited"
    );
    ensure!(q.ack(name, got[0].receipt.clone()).await?, "ack refused");
    Ok(())
}

async fn delivery_count_increments(s: Subject) -> CaseResult {
    let q = s.queue()?;
    let name = s.name("q");
    q.enqueue(name.clone(), b("m")).await?;
    for expected in 1..=3 {
        let got = q.receive(name.clone(), 1, LONG_VIS, WAIT).await?;
        ensure!(got.len() == 1, "delivery {expected} missing");
        ensure!(
            got[0].delivery_count == expected,
            "delivery {expected} counted {}",
            got[0].delivery_count
        );
        q.nack(name.clone(), got[0].receipt.clone()).await?;
    }
    Ok(())
}

async fn model_random_sequences(s: Subject) -> CaseResult {
    super::model::queue(s).await
}
