//! pubsub_basic: fan-out to live subscribers.

use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use futures::StreamExt;
use prism_proxy::Interface;
use prism_proxy::interfaces::Subscription;

use super::{Case, CaseResult, Subject, b};
use crate::{Capability, case};

/// Longest wait for a message that should arrive.
const DELIVERY: Duration = Duration::from_secs(5);
/// How long to listen for a message that must not arrive.
const QUIET: Duration = Duration::from_millis(300);

pub fn cases() -> Vec<Case> {
    let i = Interface::PubsubBasic;
    vec![
        case!(i, fan_out_to_three_subscribers),
        case!(i, messages_before_subscribing_are_not_delivered),
        case!(i, order_per_publisher_is_kept),
        case!(i, topics_are_isolated),
        case!(i, unsubscribe_ends_the_stream),
        case!(i, publish_reports_delivered_count, needs: [Capability::PubsubDeliveredCount]),
        case!(i, model_random_sequences),
    ]
}

async fn next(sub: &mut Subscription) -> anyhow::Result<Bytes> {
    let item = tokio::time::timeout(DELIVERY, sub.messages.next())
        .await
        .context("no message within 5 s")?
        .context("the subscription ended")??;
    Ok(item.payload)
}

async fn nothing_arrives(sub: &mut Subscription) -> CaseResult {
    if let Ok(Some(item)) = tokio::time::timeout(QUIET, sub.messages.next()).await {
        anyhow::bail!("unexpected delivery: {item:?}");
    }
    Ok(())
}

async fn fan_out_to_three_subscribers(s: Subject) -> CaseResult {
    let ps = s.pubsub()?;
    let topic = s.name("fan");
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(ps.subscribe(topic.clone()).await?);
    }
    ps.publish(topic, b("hello")).await?;
    for (i, sub) in subs.iter_mut().enumerate() {
        let got = next(sub).await.with_context(|| format!("subscriber {i}"))?;
        ensure!(got == b("hello"), "subscriber {i} got {got:?}");
    }
    Ok(())
}

async fn messages_before_subscribing_are_not_delivered(s: Subject) -> CaseResult {
    let ps = s.pubsub()?;
    let topic = s.name("early");
    ps.publish(topic.clone(), b("before")).await?;
    let mut sub = ps.subscribe(topic.clone()).await?;
    nothing_arrives(&mut sub).await?;
    ps.publish(topic, b("after")).await?;
    let got = next(&mut sub).await?;
    ensure!(
        got == b("after"),
        "first delivery must be the message published after subscribing, got {got:?}"
    );
    Ok(())
}

async fn order_per_publisher_is_kept(s: Subject) -> CaseResult {
    let ps = s.pubsub()?;
    let topic = s.name("order");
    let mut sub = ps.subscribe(topic.clone()).await?;
    for i in 0..100 {
        ps.publish(topic.clone(), Bytes::from(format!("{i}"))).await?;
    }
    for i in 0..100 {
        let got = next(&mut sub).await?;
        ensure!(got == format!("{i}"), "message {i} arrived as {got:?}");
    }
    Ok(())
}

async fn topics_are_isolated(s: Subject) -> CaseResult {
    let ps = s.pubsub()?;
    let mut a = ps.subscribe(s.name("a")).await?;
    ps.publish(s.name("b"), b("for b")).await?;
    nothing_arrives(&mut a).await
}

async fn unsubscribe_ends_the_stream(s: Subject) -> CaseResult {
    let ps = s.pubsub()?;
    let topic = s.name("unsub");
    let mut sub = ps.subscribe(topic.clone()).await?;
    ensure!(
        ps.unsubscribe(&sub.id).await?,
        "unsubscribe of a live subscription reports true"
    );
    let end = tokio::time::timeout(DELIVERY, sub.messages.next())
        .await
        .context("stream did not end")?;
    ensure!(end.is_none(), "stream yielded {end:?} after unsubscribe");
    ensure!(!ps.unsubscribe(&sub.id).await?, "second unsubscribe reports false");
    Ok(())
}

async fn publish_reports_delivered_count(s: Subject) -> CaseResult {
    let ps = s.pubsub()?;
    let topic = s.name("count");
    ensure!(ps.publish(topic.clone(), b("x")).await? == 0, "nobody listening");
    let _a = ps.subscribe(topic.clone()).await?;
    let _b = ps.subscribe(topic.clone()).await?;
    let n = ps.publish(topic, b("x")).await?;
    ensure!(n == 2, "two subscribers, publish reported {n}");
    Ok(())
}

async fn model_random_sequences(s: Subject) -> CaseResult {
    super::model::pubsub(s).await
}
