//! A tour of every interface against a running proxy, through `PrismClient`.
//!
//!   cargo run --release -p prism-proxy --example tour -- http://127.0.0.1:50051 default
//!
//! Exits non-zero if any call fails or answers wrongly.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use bytes::Bytes;
use futures::StreamExt;
use prism_proxy::client::PrismClient;
use prism_proxy::interfaces::*;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let endpoint = args.next().unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let namespace = args.next().unwrap_or_else(|| "default".into());
    let c = PrismClient::connect(&endpoint, &namespace)
        .await
        .with_context(|| format!("connecting to {endpoint}"))?
        .with_timeout(Duration::from_secs(5));

    let info = c.describe().await?;
    println!(
        "namespace {} on {} serves: {:?}",
        info.namespace, info.backend, info.interfaces
    );

    c.set("greeting".into(), "hello".into()).await?;
    let got = c.get("greeting".into()).await?;
    println!("keyvalue.get greeting -> {got:?}");
    ensure!(got.as_deref() == Some(&b"hello"[..]), "get returned {got:?}");

    c.set_with_ttl("session".into(), "s".into(), Duration::from_secs(60))
        .await?;
    println!("keyvalue.ttl session -> {:?}", c.ttl("session".into()).await?);

    let entries = (0..5)
        .map(|i| (Bytes::from(format!("user:{i}")), Bytes::from("x")))
        .collect();
    c.batch_set(entries).await?;
    let page = c.scan("user:".into(), 3, None).await?;
    println!(
        "keyvalue.scan user: -> {} keys, more: {}",
        page.keys.len(),
        page.next_cursor.is_some()
    );

    let mut sub = c.subscribe("news".into()).await?;
    let delivered = c.publish("news".into(), "extra!".into()).await?;
    let message = tokio::time::timeout(Duration::from_secs(5), sub.messages.next())
        .await
        .context("no pub/sub delivery within 5s")?
        .context("subscription ended")??;
    println!(
        "pubsub.publish news -> delivered to {delivered}, received {:?}",
        message.payload
    );

    c.enqueue("jobs".into(), "job-1".into()).await?;
    let received = c
        .receive("jobs".into(), 10, Duration::from_secs(30), Duration::from_secs(1))
        .await?;
    ensure!(received.len() == 1, "expected one message, got {}", received.len());
    let acked = c.ack("jobs".into(), received[0].receipt.clone()).await?;
    println!("queue.receive jobs -> {:?}, acked: {acked}", received[0].payload);

    let now = 1_700_000_000_000;
    let events = (0..100)
        .map(|i| Event {
            timestamp_ms: now + i * 100,
            tags: [("host".to_string(), format!("h{}", i % 2))].into(),
            fields: [("latency_ms".to_string(), i as f64)].into(),
        })
        .collect();
    c.append("requests".into(), events).await?;
    let rows = c
        .aggregate(
            "requests".into(),
            Aggregation {
                start_ms: now,
                end_ms: now + 10_000,
                filters: Default::default(),
                bucket_ms: 5_000,
                metric: "latency_ms".into(),
                function: AggregateFunction::P99,
                group_by: vec!["host".into()],
            },
        )
        .await?;
    for row in &rows {
        println!(
            "timeseries.aggregate p99 bucket {} {:?} -> {} ({} events)",
            row.bucket_start_ms, row.group, row.value, row.count
        );
    }

    let start = Instant::now();
    let n = 2000;
    for i in 0..n {
        c.get(Bytes::from(format!("user:{}", i % 5))).await?;
    }
    let per = start.elapsed() / n;
    println!("{n} sequential gets: {per:?} per round trip");
    Ok(())
}
