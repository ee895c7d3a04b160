//! The pubsub_basic model: subscribers come and go on one topic while three publishers
//! publish, one at a time or all at once. Each subscriber must get exactly the messages
//! published while it was live (after `subscribe` returned, before it was drained and
//! ended), each once, and every publisher's messages in the order that publisher sent them.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use futures::StreamExt;
use prism_proxy::interfaces::{PubSubBasic, Subscription};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::run_model;
use crate::suites::{CaseResult, Subject};

const PUBLISHERS: u8 = 3;
/// Longest wait for a message that should arrive.
const DELIVERY: Duration = Duration::from_secs(5);
/// How long to listen for a message that must not arrive.
const QUIET: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum PubSubOp {
    Subscribe,
    /// Drains live subscriber number i (modulo how many are live) and unsubscribes it.
    Unsubscribe(usize),
    /// One message from publisher p.
    Publish(u8),
    /// n messages from every publisher, the publishers concurrent.
    Burst(u8),
}

fn op() -> impl Strategy<Value = PubSubOp> {
    prop_oneof![
        2 => Just(PubSubOp::Subscribe),
        1 => any::<usize>().prop_map(PubSubOp::Unsubscribe),
        3 => (0..PUBLISHERS).prop_map(PubSubOp::Publish),
        1 => (1u8..8).prop_map(PubSubOp::Burst),
    ]
}

pub async fn run(s: Subject) -> CaseResult {
    run_model(s, "pubsub", 16, prop::collection::vec(op(), 1..20), |s, ops| {
        Box::pin(check(s, ops))
    })
    .await
}

/// A message as the model names it: publisher and that publisher's sequence number.
type Sent = (u8, u32);

fn payload((publisher, n): Sent) -> Bytes {
    Bytes::from(format!("{publisher}:{n}"))
}

fn parse(payload: &[u8]) -> Option<Sent> {
    let (p, n) = std::str::from_utf8(payload).ok()?.split_once(':')?;
    Some((p.parse().ok()?, n.parse().ok()?))
}

/// A live subscriber and what it must receive.
struct Live {
    /// Its number in the sequence (for messages).
    number: usize,
    subscription: Subscription,
    expected: Vec<Sent>,
}

pub(super) async fn check(s: Subject, ops: Vec<PubSubOp>) -> CaseResult {
    let ps = s.pubsub()?;
    let topic = s.name("t");
    let mut next = [0u32; PUBLISHERS as usize];
    let mut live: Vec<Live> = Vec::new();
    let mut subscribed = 0;
    for (step, op) in ops.iter().enumerate() {
        match *op {
            PubSubOp::Subscribe => {
                let subscription = ps.subscribe(topic.clone()).await?;
                live.push(Live {
                    number: subscribed,
                    subscription,
                    expected: Vec::new(),
                });
                subscribed += 1;
            }
            PubSubOp::Unsubscribe(i) if !live.is_empty() => {
                let sub = live.remove(i % live.len());
                end(ps.as_ref(), &topic, sub)
                    .await
                    .with_context(|| format!("step {step} {op:?}"))?;
            }
            PubSubOp::Unsubscribe(_) => {}
            PubSubOp::Publish(p) => {
                let Some(n) = next.get_mut(p as usize) else {
                    anyhow::bail!("step {step}: publisher {p} is not one of {PUBLISHERS}");
                };
                *n += 1;
                ps.publish(topic.clone(), payload((p, *n))).await?;
                for sub in &mut live {
                    sub.expected.push((p, *n));
                }
            }
            PubSubOp::Burst(count) => {
                let publishers = (0..PUBLISHERS).map(|p| {
                    let (ps, topic) = (ps.clone(), topic.clone());
                    let first = next[p as usize] + 1;
                    async move {
                        for n in first..first + u32::from(count) {
                            ps.publish(topic.clone(), payload((p, n))).await?;
                        }
                        anyhow::Ok(())
                    }
                });
                futures::future::try_join_all(publishers).await?;
                for (p, n) in next.iter_mut().enumerate() {
                    for _ in 0..count {
                        *n += 1;
                        for sub in &mut live {
                            sub.expected.push((p as u8, *n));
                        }
                    }
                }
            }
        }
    }
    for sub in live {
        end(ps.as_ref(), &topic, sub).await.context("after the sequence")?;
    }
    Ok(())
}

/// Receives everything `sub` must have got, checks it against the model, and ends it.
async fn end(ps: &dyn PubSubBasic, topic: &str, mut sub: Live) -> CaseResult {
    let number = sub.number;
    let mut received: Vec<Sent> = Vec::new();
    while received.len() < sub.expected.len() {
        let item = tokio::time::timeout(DELIVERY, sub.subscription.messages.next())
            .await
            .with_context(|| {
                format!(
                    "subscriber {number}: {} of {} messages within {DELIVERY:?}; missing {:?}",
                    received.len(),
                    sub.expected.len(),
                    missing(&sub.expected, &received)
                )
            })?
            .with_context(|| format!("subscriber {number}: the subscription ended"))??;
        ensure!(
            item.topic == topic,
            "subscriber {number}: a message of topic {:?}",
            item.topic
        );
        let sent = parse(&item.payload)
            .with_context(|| format!("subscriber {number}: a payload no publisher sent: {:?}", item.payload))?;
        received.push(sent);
    }
    if let Ok(Some(extra)) = tokio::time::timeout(QUIET, sub.subscription.messages.next()).await {
        anyhow::bail!("subscriber {number}: a message past the expected ones: {extra:?}");
    }
    for p in 0..PUBLISHERS {
        let of = |list: &[Sent]| -> Vec<u32> { list.iter().filter(|m| m.0 == p).map(|m| m.1).collect() };
        let (got, want) = (of(&received), of(&sub.expected));
        ensure!(
            got == want,
            "subscriber {number}: publisher {p}'s messages came as {got:?}, sent as {want:?}"
        );
    }
    ensure!(
        ps.unsubscribe(&sub.subscription.id).await?,
        "subscriber {number}: unsubscribe of a live subscription reported false"
    );
    Ok(())
}

/// What `expected` holds that `received` does not (counting repeats).
fn missing(expected: &[Sent], received: &[Sent]) -> Vec<Sent> {
    let mut counts: BTreeMap<Sent, i64> = BTreeMap::new();
    for m in expected {
        *counts.entry(*m).or_default() += 1;
    }
    for m in received {
        *counts.entry(*m).or_default() -= 1;
    }
    counts.into_iter().filter(|(_, c)| *c > 0).map(|(m, _)| m).collect()
}
