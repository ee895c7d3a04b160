//! memstore semantics, table-driven, with paused tokio time for TTL and visibility
//! timeouts (time advances only when the test says so, or when every task is idle).

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use prism_proxy::BackendError;
use prism_proxy::backends::memstore::{MemStore, Queues};
use prism_proxy::interfaces::*;
use rstest::rstest;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[rstest]
#[case::missing_key_is_none("k", None, None)]
#[case::empty_value_is_present("k", Some(""), Some(""))]
#[case::plain_value("k", Some("v"), Some("v"))]
#[case::unicode_key("ключ-🔑", Some("v"), Some("v"))]
#[tokio::test]
async fn get_after_set(#[case] key: &str, #[case] set: Option<&str>, #[case] expected: Option<&str>) {
    let kv = MemStore::new().kv;
    if let Some(value) = set {
        kv.set(b(key), b(value)).await.unwrap();
    }
    assert_eq!(kv.get(b(key)).await.unwrap(), expected.map(b));
    assert_eq!(kv.exists(b(key)).await.unwrap(), expected.is_some());
}

#[tokio::test]
async fn binary_keys_and_overwrite_and_delete() {
    let kv = MemStore::new().kv;
    let key = Bytes::from_static(&[0, 255, 1, 0]);
    kv.set(key.clone(), b("one")).await.unwrap();
    kv.set(key.clone(), b("two")).await.unwrap();
    assert_eq!(kv.get(key.clone()).await.unwrap(), Some(b("two")));
    assert!(kv.delete(key.clone()).await.unwrap(), "delete reports the key existed");
    assert!(!kv.delete(key.clone()).await.unwrap(), "second delete finds nothing");
    assert_eq!(kv.get(key).await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn ttl_expiry_hides_key_everywhere() {
    let kv = MemStore::new().kv;
    kv.set_with_ttl(b("t:a"), b("v"), Duration::from_secs(10))
        .await
        .unwrap();
    kv.set(b("t:b"), b("v")).await.unwrap();
    assert_eq!(
        kv.ttl(b("t:a")).await.unwrap(),
        TtlState::Expiring(Duration::from_secs(10))
    );
    tokio::time::advance(Duration::from_millis(9_999)).await;
    assert!(kv.exists(b("t:a")).await.unwrap());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(kv.get(b("t:a")).await.unwrap(), None);
    assert!(!kv.exists(b("t:a")).await.unwrap());
    assert_eq!(kv.ttl(b("t:a")).await.unwrap(), TtlState::Missing);
    assert_eq!(kv.scan(b("t:"), 10, None).await.unwrap().keys, vec![b("t:b")]);
    assert_eq!(kv.count(b("t:")).await.unwrap(), 1);
    assert!(!kv.delete(b("t:a")).await.unwrap(), "an expired key did not exist");
}

#[rstest]
#[case::missing(None, TtlState::Missing)]
#[case::persistent(Some(None), TtlState::Persistent)]
#[case::expiring(Some(Some(5)), TtlState::Expiring(Duration::from_secs(5)))]
#[tokio::test(start_paused = true)]
async fn ttl_answers(#[case] setup: Option<Option<u64>>, #[case] expected: TtlState) {
    let kv = MemStore::new().kv;
    match setup {
        None => {}
        Some(None) => kv.set(b("k"), b("v")).await.unwrap(),
        Some(Some(secs)) => kv
            .set_with_ttl(b("k"), b("v"), Duration::from_secs(secs))
            .await
            .unwrap(),
    }
    assert_eq!(kv.ttl(b("k")).await.unwrap(), expected);
}

#[tokio::test(start_paused = true)]
async fn expire_persist_and_set_clears_expiry() {
    let kv = MemStore::new().kv;
    assert!(!kv.expire(b("k"), Duration::from_secs(1)).await.unwrap(), "missing key");
    kv.set(b("k"), b("v")).await.unwrap();
    assert!(!kv.persist(b("k")).await.unwrap(), "no expiry to remove");
    assert!(kv.expire(b("k"), Duration::from_secs(1)).await.unwrap());
    assert!(kv.persist(b("k")).await.unwrap());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(kv.exists(b("k")).await.unwrap(), "persisted key survives");
    kv.expire(b("k"), Duration::from_secs(1)).await.unwrap();
    kv.set(b("k"), b("w")).await.unwrap();
    assert_eq!(kv.ttl(b("k")).await.unwrap(), TtlState::Persistent, "set clears expiry");
    let err = kv.set_with_ttl(b("k"), b("v"), Duration::ZERO).await.unwrap_err();
    assert!(
        matches!(err, BackendError::InvalidArgument { ref field, .. } if field == "ttl_ms"),
        "{err:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn sweeper_frees_expired_entries_nobody_reads() {
    let kv = MemStore::new().kv;
    for i in 0..100 {
        kv.set_with_ttl(b(&format!("k{i}")), b("v"), Duration::from_millis(500))
            .await
            .unwrap();
    }
    assert_eq!(kv.stored_entries(), 100);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(kv.stored_entries(), 0);
}

#[rstest]
#[case::one_page(5, 10)]
#[case::exact_pages(10, 5)]
#[case::ragged_pages(23, 4)]
#[case::page_of_one(7, 1)]
#[tokio::test]
async fn scan_returns_each_key_once_with_prefix_isolation(#[case] keys: usize, #[case] page: u32) {
    let kv = MemStore::new().kv;
    for i in 0..keys {
        kv.set(b(&format!("p:{i:03}")), b("v")).await.unwrap();
    }
    // Neighbours on both sides of the prefix must not leak in.
    kv.set(b("p"), b("v")).await.unwrap();
    kv.set(b("p;"), b("v")).await.unwrap();
    kv.set(b("o:1"), b("v")).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let got = kv.scan(b("p:"), page, cursor).await.unwrap();
        assert!(got.keys.len() <= page as usize);
        seen.extend(got.keys);
        match got.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let expected: Vec<Bytes> = (0..keys).map(|i| b(&format!("p:{i:03}"))).collect();
    assert_eq!(seen, expected);
    assert_eq!(kv.count(b("p:")).await.unwrap(), keys as u64);
}

#[tokio::test]
async fn scan_survives_writes_between_pages() {
    let kv = MemStore::new().kv;
    for i in 0..10 {
        kv.set(b(&format!("k{i}")), b("v")).await.unwrap();
    }
    let first = kv.scan(b("k"), 5, None).await.unwrap();
    // Delete a key already returned and insert one before the cursor.
    kv.delete(b("k0")).await.unwrap();
    kv.set(b("k00"), b("v")).await.unwrap();
    let second = kv.scan(b("k"), 100, first.next_cursor).await.unwrap();
    let mut all = first.keys;
    all.extend(second.keys);
    let unique: std::collections::BTreeSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no key twice: {all:?}");
    for i in 0..10 {
        assert!(
            all.contains(&b(&format!("k{i}"))),
            "k{i} present throughout must be returned"
        );
    }
}

#[tokio::test]
async fn batch_results_are_per_key_in_order() {
    let kv = MemStore::new().kv;
    let stored = kv
        .batch_set(vec![(b("a"), b("1")), (b("b"), b("")), (b("a"), b("3"))])
        .await
        .unwrap();
    assert_eq!(stored, vec![true, true, true]);
    let got = kv.batch_get(vec![b("b"), b("missing"), b("a")]).await.unwrap();
    assert_eq!(
        got,
        vec![Some(b("")), None, Some(b("3"))],
        "later entry wins, order kept"
    );
    let deleted = kv.batch_delete(vec![b("a"), b("zz"), b("a")]).await.unwrap();
    assert_eq!(deleted, vec![true, false, false]);
}

#[tokio::test]
async fn concurrent_writers_are_safe() {
    let kv = MemStore::new().kv;
    let writers: Vec<_> = (0..100)
        .map(|w| {
            let kv = kv.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    kv.set(b(&format!("w{w}:{i}")), b(&format!("{w}"))).await.unwrap();
                    kv.set(b("shared"), b(&format!("{w}"))).await.unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(kv.count(b("w")).await.unwrap(), 5000);
    let shared = kv.get(b("shared")).await.unwrap().unwrap();
    let writer: u32 = std::str::from_utf8(&shared).unwrap().parse().unwrap();
    assert!(writer < 100, "last write is one writer's whole value");
}

#[tokio::test]
async fn pubsub_fans_out_to_live_subscribers_only() {
    let ps = MemStore::new().pubsub;
    assert_eq!(ps.publish("t".into(), b("before")).await.unwrap(), 0);
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(ps.subscribe("t".into()).await.unwrap());
    }
    let other = ps.subscribe("other".into()).await.unwrap();
    for i in 0..5 {
        assert_eq!(ps.publish("t".into(), b(&format!("m{i}"))).await.unwrap(), 3);
    }
    for sub in &mut subs {
        let got: Vec<Bytes> = (&mut sub.messages).take(5).map(|m| m.unwrap().payload).collect().await;
        let expected: Vec<Bytes> = (0..5).map(|i| b(&format!("m{i}"))).collect();
        assert_eq!(got, expected, "in publish order, nothing from before subscribing");
    }
    // Unsubscribe ends the stream; dropping forgets the subscription.
    let mut first = subs.remove(0);
    assert!(ps.unsubscribe(&first.id).await.unwrap());
    assert!(!ps.unsubscribe(&first.id).await.unwrap());
    assert!(first.messages.next().await.is_none());
    drop(first);
    drop(other);
    assert_eq!(ps.publish("t".into(), b("x")).await.unwrap(), 2);
    drop(subs);
    assert_eq!(ps.subscription_count(), 0);
    assert_eq!(ps.publish("t".into(), b("x")).await.unwrap(), 0);
}

/// Dropping one of two subscriptions of a topic leaves the other live. It once closed
/// the topic's channel under it (the pubsub model check found it).
#[tokio::test]
async fn ending_one_of_two_subscriptions_keeps_the_other() {
    let ps = MemStore::new().pubsub;
    let mut kept = ps.subscribe("t".into()).await.unwrap();
    let ended = ps.subscribe("t".into()).await.unwrap();
    assert!(ps.unsubscribe(&ended.id).await.unwrap());
    drop(ended);
    assert_eq!(ps.publish("t".into(), b("after")).await.unwrap(), 1);
    let got = tokio::time::timeout(Duration::from_secs(5), kept.messages.next()).await;
    assert_eq!(got.unwrap().unwrap().unwrap().payload, b("after"));
}

#[tokio::test]
async fn slow_subscriber_is_told_it_was_cut_off() {
    let ps = MemStore::new().pubsub;
    let mut sub = ps.subscribe("t".into()).await.unwrap();
    for i in 0..5000 {
        ps.publish("t".into(), b(&format!("{i}"))).await.unwrap();
    }
    let first = sub.messages.next().await.unwrap();
    assert!(matches!(first, Err(BackendError::Overloaded(_))), "{first:?}");
    assert!(sub.messages.next().await.is_none(), "ended after the error");
}

const VIS: Duration = Duration::from_secs(30);

/// Settling receipts on queues that were never used creates nothing: a client cannot
/// grow the store by acking random names.
#[tokio::test]
async fn acks_and_nacks_on_unknown_queues_create_nothing() {
    let queues = Queues::default();
    for i in 0..100 {
        assert!(!queues.ack(format!("q{i}"), "r".into()).await.unwrap());
        assert!(!queues.nack(format!("n{i}"), "r".into()).await.unwrap());
    }
    assert_eq!(queues.depth("q1"), 0);
    assert_eq!(queues.count(), 0);
    queues.enqueue("real".into(), b("m")).await.unwrap();
    assert_eq!(queues.count(), 1);
}

/// Receives on names never enqueued to leave nothing behind, whether they time out or
/// are given up by their caller; a queue emptied by acks is forgotten too, and message
/// ids stay unique when a name is used again.
#[tokio::test]
async fn receives_on_unused_queues_leave_nothing_behind() {
    let queues = Queues::default();
    for i in 0..100 {
        assert!(
            queues
                .receive(format!("q{i}"), 10, VIS, Duration::ZERO)
                .await
                .unwrap()
                .is_empty()
        );
    }
    let given_up = tokio::time::timeout(
        Duration::from_millis(20),
        queues.receive("waiting".into(), 1, VIS, Duration::from_secs(60)),
    )
    .await;
    assert!(given_up.is_err());
    assert_eq!(queues.count(), 0);

    let first = queues.enqueue("q".into(), b("m")).await.unwrap();
    let got = queues.receive("q".into(), 1, VIS, Duration::ZERO).await.unwrap();
    assert_eq!(queues.count(), 1, "a message in flight keeps its queue");
    assert!(queues.ack("q".into(), got[0].receipt.clone()).await.unwrap());
    assert!(
        queues
            .receive("q".into(), 1, VIS, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(queues.count(), 0, "an emptied queue is forgotten");
    let second = queues.enqueue("q".into(), b("m")).await.unwrap();
    assert_ne!(first, second, "a message id was reused");
}

#[tokio::test(start_paused = true)]
async fn queue_redelivers_after_visibility_timeout() {
    let q = MemStore::new().queues;
    let id = q.enqueue("jobs".into(), b("work")).await.unwrap();
    let got = q.receive("jobs".into(), 10, VIS, Duration::ZERO).await.unwrap();
    assert_eq!(
        (got.len(), got[0].message_id.as_str(), got[0].delivery_count),
        (1, id.as_str(), 1)
    );
    assert!(
        q.receive("jobs".into(), 10, VIS, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "invisible while in flight"
    );
    tokio::time::advance(VIS).await;
    let again = q.receive("jobs".into(), 10, VIS, Duration::ZERO).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_count, 2);
    assert!(
        !q.ack("jobs".into(), got[0].receipt.clone()).await.unwrap(),
        "stale receipt"
    );
    assert!(q.ack("jobs".into(), again[0].receipt.clone()).await.unwrap());
    tokio::time::advance(VIS * 2).await;
    assert!(
        q.receive("jobs".into(), 10, VIS, Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "ack is final"
    );
    assert_eq!(q.depth("jobs"), 0);
}

#[tokio::test(start_paused = true)]
async fn queue_nack_redelivers_at_once_and_fifo_holds() {
    let q = MemStore::new().queues;
    for i in 0..3 {
        q.enqueue("q".into(), b(&format!("{i}"))).await.unwrap();
    }
    let got = q.receive("q".into(), 2, VIS, Duration::ZERO).await.unwrap();
    let payloads: Vec<_> = got.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(payloads, vec![b("0"), b("1")]);
    assert!(q.nack("q".into(), got[0].receipt.clone()).await.unwrap());
    assert!(
        !q.nack("q".into(), got[0].receipt.clone()).await.unwrap(),
        "receipt used up"
    );
    let next = q.receive("q".into(), 5, VIS, Duration::ZERO).await.unwrap();
    let payloads: Vec<_> = next.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(payloads, vec![b("0"), b("2")], "oldest first");
}

#[tokio::test(start_paused = true)]
async fn queue_consumer_that_dies_loses_nothing() {
    let q = MemStore::new().queues;
    for i in 0..10 {
        q.enqueue("q".into(), b(&format!("{i}"))).await.unwrap();
    }
    // A consumer takes half and dies without acking.
    let lost = q.receive("q".into(), 5, VIS, Duration::ZERO).await.unwrap();
    assert_eq!(lost.len(), 5);
    // Another consumer, long-polling, eventually gets all ten.
    let mut done = std::collections::BTreeSet::new();
    while done.len() < 10 {
        let got = q.receive("q".into(), 10, VIS, Duration::from_secs(60)).await.unwrap();
        assert!(
            !got.is_empty(),
            "long poll returns when the dead consumer's messages come back"
        );
        for m in got {
            assert!(q.ack("q".into(), m.receipt).await.unwrap());
            done.insert(m.payload);
        }
    }
    assert_eq!(q.depth("q"), 0);
}

#[tokio::test(start_paused = true)]
async fn queue_long_poll_wakes_on_enqueue() {
    let q = std::sync::Arc::new(MemStore::new().queues);
    let waiter = {
        let q = q.clone();
        tokio::spawn(async move { q.receive("q".into(), 1, VIS, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    q.enqueue("q".into(), b("late")).await.unwrap();
    let got = waiter.await.unwrap().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b("late"));
    let start = tokio::time::Instant::now();
    assert!(
        q.receive("q".into(), 1, VIS, Duration::from_secs(2))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "empty long poll waits the full time"
    );
}

fn ev(ts: i64, host: &str, cpu: f64) -> Event {
    Event {
        timestamp_ms: ts,
        tags: [("host".to_string(), host.to_string())].into(),
        fields: [("cpu".to_string(), cpu)].into(),
    }
}

#[tokio::test]
async fn timeseries_range_bounds_are_exact_and_ordered() {
    let ts = MemStore::new().series;
    // Appended out of order, with a tie at 20.
    let events = vec![
        ev(30, "a", 3.0),
        ev(10, "a", 1.0),
        ev(20, "b", 2.0),
        ev(20, "a", 2.5),
        ev(40, "a", 4.0),
    ];
    assert_eq!(ts.append("cpu".into(), events).await.unwrap(), 5);
    let all = |start, end| Query {
        start_ms: start,
        end_ms: end,
        ..Query::default()
    };
    let got = ts.query("cpu".into(), all(10, 40)).await.unwrap();
    let times: Vec<(i64, f64)> = got.iter().map(|e| (e.timestamp_ms, e.fields["cpu"])).collect();
    assert_eq!(
        times,
        vec![(10, 1.0), (20, 2.0), (20, 2.5), (30, 3.0)],
        "start inclusive, end exclusive, ties in append order"
    );
    let filtered = Query {
        filters: [("host".into(), "b".into())].into(),
        ..all(0, 100)
    };
    assert_eq!(ts.query("cpu".into(), filtered).await.unwrap().len(), 1);
    let limited = Query {
        limit: 2,
        ..all(0, 100)
    };
    assert_eq!(ts.query("cpu".into(), limited).await.unwrap().len(), 2);
    assert!(ts.query("other".into(), all(0, 100)).await.unwrap().is_empty());
}

#[rstest]
#[case::count(AggregateFunction::Count, vec![3.0, 1.0])]
#[case::sum(AggregateFunction::Sum, vec![6.0, 10.0])]
#[case::avg(AggregateFunction::Avg, vec![2.0, 10.0])]
#[case::min(AggregateFunction::Min, vec![1.0, 10.0])]
#[case::max(AggregateFunction::Max, vec![3.0, 10.0])]
#[case::p95(AggregateFunction::P95, vec![3.0, 10.0])]
#[case::p99(AggregateFunction::P99, vec![3.0, 10.0])]
#[tokio::test]
async fn timeseries_aggregates_by_bucket(#[case] function: AggregateFunction, #[case] expected: Vec<f64>) {
    let ts = MemStore::new().series;
    let events = vec![
        ev(0, "a", 1.0),
        ev(5, "a", 2.0),
        ev(9, "a", 3.0),
        ev(10, "a", 10.0),
        ev(25, "a", 99.0),
    ];
    ts.append("s".into(), events).await.unwrap();
    let aggregation = Aggregation {
        start_ms: 0,
        end_ms: 20,
        filters: Default::default(),
        bucket_ms: 10,
        metric: "cpu".into(),
        function,
        group_by: vec![],
    };
    let rows = ts.aggregate("s".into(), aggregation).await.unwrap();
    let buckets: Vec<i64> = rows.iter().map(|r| r.bucket_start_ms).collect();
    assert_eq!(buckets, vec![0, 10]);
    let values: Vec<f64> = rows.iter().map(|r| r.value).collect();
    assert_eq!(values, expected);
}

#[tokio::test]
async fn timeseries_group_by_and_reference_agree_on_random_data() {
    let ts = MemStore::new().series;
    let mut events = Vec::new();
    let mut x: u64 = 42;
    for i in 0..2000 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let host = ["a", "b", "c"][(x >> 33) as usize % 3];
        events.push(ev((x >> 40) as i64 % 100_000, host, (i % 97) as f64));
    }
    ts.append("s".into(), events.clone()).await.unwrap();
    for function in [AggregateFunction::P99, AggregateFunction::Avg, AggregateFunction::Count] {
        let aggregation = Aggregation {
            start_ms: 1000,
            end_ms: 90_000,
            filters: Default::default(),
            bucket_ms: 7_000,
            metric: "cpu".into(),
            function,
            group_by: vec!["host".into()],
        };
        let rows = ts.aggregate("s".into(), aggregation.clone()).await.unwrap();
        // Independent check of the counts, computed here without the library.
        let in_range = events
            .iter()
            .filter(|e| (1000..90_000).contains(&e.timestamp_ms))
            .count() as u64;
        assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), in_range);
        assert_eq!(rows, aggregation.compute(&events));
    }
}
