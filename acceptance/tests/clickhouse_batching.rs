//! The ClickHouse driver's insert batching, against a real ClickHouse (a process from
//! ci/install-servers.sh): flush by time, flush by size, pushback when the buffer is full
//! (nothing dropped), an append given up before its batch is sent is not written later,
//! and everything written at once when the proxy drains.
//!
//! A missing clickhouse-server fails under PRISM_ACCEPT_STRICT=1 (CI) and is reported as
//! skipped otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};

use acceptance::Instance;
use acceptance::provision::{self, process, specs};
use prism_proxy::backends::clickhouse::{Clickhouse, ClickhouseConfig};
use prism_proxy::interfaces::{Event, Query, TimeSeriesBasic};

async fn server() -> Option<Instance> {
    if !provision::binary_or_skip(&specs::CLICKHOUSE) {
        return None;
    }
    Some(process::start(&specs::CLICKHOUSE).await.expect("start clickhouse"))
}

fn driver(instance: &Instance, batch_rows: usize, flush_interval: Duration, buffer_rows: usize) -> Arc<Clickhouse> {
    let config = ClickhouseConfig {
        batch_rows,
        flush_interval,
        buffer_rows,
        ..ClickhouseConfig::new(instance.url.as_deref().expect("url"))
    };
    Arc::new(Clickhouse::connect(&config).expect("driver"))
}

fn events(n: usize) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            tags: [("host".to_string(), "a".to_string())].into(),
            fields: [("v".to_string(), i as f64)].into(),
        })
        .collect()
}

async fn stored(ch: &Clickhouse, stream: &str) -> usize {
    let all = Query {
        start_ms: i64::MIN,
        end_ms: i64::MAX,
        filters: Default::default(),
        limit: 0,
    };
    ch.query(stream.into(), all).await.expect("query").len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_batch_is_written_when_the_flush_interval_passes() {
    let Some(instance) = server().await else { return };
    let ch = driver(&instance, 1_000, Duration::from_millis(300), 10_000);
    let started = Instant::now();
    assert_eq!(ch.append("time".into(), events(1)).await.expect("append"), 1);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "returned after {:?}, before the flush interval: was it written at all?",
        started.elapsed()
    );
    assert_eq!(stored(&ch, "time").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_is_written_without_waiting_for_the_interval() {
    let Some(instance) = server().await else { return };
    let ch = driver(&instance, 10, Duration::from_secs(600), 10_000);
    let appended = tokio::time::timeout(Duration::from_secs(30), ch.append("size".into(), events(10))).await;
    assert_eq!(
        appended
            .expect("a full batch waited for the 600 s interval")
            .expect("append"),
        10
    );
    assert_eq!(stored(&ch, "size").await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_buffer_makes_callers_wait_and_drops_nothing() {
    let Some(instance) = server().await else { return };
    // Room for 20 rows; a batch is sent at 20 rows or after 1 s.
    let ch = driver(&instance, 20, Duration::from_secs(1), 20);
    let first = tokio::spawn({
        let ch = ch.clone();
        async move { ch.append("room".into(), events(15)).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = tokio::spawn({
        let ch = ch.clone();
        async move { ch.append("room".into(), events(10)).await }
    });
    // 15 rows wait for the interval; 10 more do not fit in the 5 rows of room left.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !first.is_finished(),
        "15 rows were written before the interval or the size limit"
    );
    assert!(!second.is_finished(), "an append got past a full buffer");
    assert_eq!(first.await.expect("task").expect("append"), 15);
    // The second append entered the buffer only once the first was written, so it waits
    // for a batch of its own (another interval) instead of riding along.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second append was written with the first: no pushback"
    );
    assert_eq!(second.await.expect("task").expect("append"), 10);
    assert_eq!(stored(&ch, "room").await, 25, "every accepted event is stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_writes_waiting_events_at_once() {
    let Some(instance) = server().await else { return };
    let ch = driver(&instance, 1_000, Duration::from_secs(600), 10_000);
    let pending = tokio::spawn({
        let ch = ch.clone();
        async move { ch.append("drain".into(), events(5)).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished(), "5 rows were written before the 600 s interval");
    prism_proxy::backends::HealthCheck::draining(ch.as_ref());
    let appended = tokio::time::timeout(Duration::from_secs(30), pending).await;
    assert_eq!(
        appended
            .expect("still waiting after the drain began")
            .expect("task")
            .expect("append"),
        5
    );
    assert_eq!(stored(&ch, "drain").await, 5);
    // After the drain began, appends no longer wait for the interval either.
    let late = tokio::time::timeout(Duration::from_secs(30), ch.append("drain".into(), events(1))).await;
    assert_eq!(late.expect("an append after the drain waited").expect("append"), 1);
}

/// An append whose caller gave up (here: its deadline) before the batch was sent is not
/// written afterwards, so a retry does not duplicate it; the appends still waiting are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_given_up_before_its_batch_is_sent_is_not_written() {
    let Some(instance) = server().await else { return };
    let ch = driver(&instance, 1_000, Duration::from_millis(800), 10_000);
    let given_up = tokio::time::timeout(Duration::from_millis(50), ch.append("gone".into(), events(5))).await;
    assert!(given_up.is_err(), "the append returned before the flush interval");
    assert_eq!(ch.append("kept".into(), events(3)).await.expect("append"), 3);
    assert_eq!(stored(&ch, "kept").await, 3);
    assert_eq!(stored(&ch, "gone").await, 0, "rows of an append given up were written");
}

/// With `concurrent_inserts: 2` a second full batch is sent while ClickHouse still works
/// on the first: behind a second of network latency each way, two batches appended at
/// once take well under the time they take one INSERT after another (measured in the
/// same run, with `concurrent_inserts: 1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_batches_are_inserted_concurrently_up_to_the_limit() {
    let Some(instance) = server().await else { return };
    let slow = acceptance::nemesis::FaultProxy::start(instance.addr.expect("address"))
        .await
        .expect("fault proxy");
    let mut took = Vec::new();
    for concurrent_inserts in [1, 2] {
        let config = ClickhouseConfig {
            batch_rows: 10,
            flush_interval: Duration::from_secs(600),
            concurrent_inserts,
            ..ClickhouseConfig::new(&format!("http://{}", slow.addr()))
        };
        let ch = Arc::new(Clickhouse::connect(&config).expect("driver"));
        ch.append("warm".into(), events(10)).await.expect("warm-up append");
        slow.set(acceptance::nemesis::Toxic::Latency(Duration::from_secs(1)));
        let started = Instant::now();
        let stream = format!("concurrent{concurrent_inserts}");
        let (a, b) = tokio::join!(
            ch.append(stream.clone(), events(10)),
            ch.append(stream.clone(), events(10))
        );
        took.push(started.elapsed());
        slow.heal();
        assert_eq!((a.expect("first"), b.expect("second")), (10, 10));
        assert_eq!(stored(&ch, &stream).await, 20);
    }
    assert!(
        took[1].as_secs_f64() < 0.75 * took[0].as_secs_f64(),
        "two batches took {:?} with two inserts at once, {:?} one after another",
        took[1],
        took[0]
    );
}
