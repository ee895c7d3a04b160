//! In-process cost of memstore operations (no network), the floor under every proxy call.
//!
//!   cargo bench -p prism-proxy --bench memstore

// A benchmark that cannot set itself up has nothing to measure: it stops.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use prism_proxy::backends::memstore::MemStore;
use prism_proxy::interfaces::*;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn keyvalue(c: &mut Criterion) {
    let rt = runtime();
    let store = MemStore::new();
    let kv = store.kv.clone();
    let value = Bytes::from(vec![7u8; 128]);
    rt.block_on(async {
        for i in 0..100_000 {
            kv.set(Bytes::from(format!("key:{i:06}")), value.clone()).await.unwrap();
        }
    });
    let keys: Vec<Bytes> = (0..100_000).map(|i| Bytes::from(format!("key:{i:06}"))).collect();
    let mut g = c.benchmark_group("memstore/keyvalue");
    let mut i = 0usize;
    g.bench_function("get_hit_100k_keys", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7919) % keys.len();
            let key = keys[i].clone();
            let kv = &kv;
            async move { black_box(kv.get(key).await.unwrap()) }
        })
    });
    g.bench_function("get_miss", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(kv.get(Bytes::from_static(b"nope")).await.unwrap()) })
    });
    g.bench_function("set_128b_overwrite", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 7919) % keys.len();
            let (key, value) = (keys[i].clone(), value.clone());
            let kv = &kv;
            async move { kv.set(key, value).await.unwrap() }
        })
    });
    g.bench_function("scan_page_100", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(kv.scan(Bytes::from_static(b"key:05"), 100, None).await.unwrap()) })
    });
    g.bench_function("batch_get_100", |b| {
        let batch: Vec<Bytes> = keys.iter().step_by(997).take(100).cloned().collect();
        b.to_async(&rt).iter_batched(
            || batch.clone(),
            |batch| async { black_box(kv.batch_get(batch).await.unwrap()) },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn queue(c: &mut Criterion) {
    let rt = runtime();
    let queues = MemStore::new().queues;
    let payload = Bytes::from(vec![1u8; 128]);
    c.bench_function("memstore/queue/enqueue_receive_ack", |b| {
        b.to_async(&rt).iter(|| async {
            queues.enqueue("q".into(), payload.clone()).await.unwrap();
            let got = queues
                .receive("q".into(), 1, Duration::from_secs(30), Duration::ZERO)
                .await
                .unwrap();
            queues.ack("q".into(), got[0].receipt.clone()).await.unwrap();
        })
    });
}

fn timeseries(c: &mut Criterion) {
    let rt = runtime();
    let series = MemStore::new().series;
    let event = |ts: i64| Event {
        timestamp_ms: ts,
        tags: [("host".to_string(), format!("h{}", ts % 4))].into(),
        fields: [("v".to_string(), ts as f64)].into(),
    };
    let mut ts = 0i64;
    c.bench_function("memstore/timeseries/append_100_in_order", |b| {
        b.to_async(&rt).iter_batched(
            || {
                let batch: Vec<Event> = (ts..ts + 100).map(event).collect();
                ts += 100;
                batch
            },
            |batch| async { series.append("s".into(), batch).await.unwrap() },
            BatchSize::SmallInput,
        )
    });
    // Each batch earlier than everything stored: the order that was quadratic when the
    // events were a sorted Vec (every insert shifted the whole stream).
    let series = MemStore::new().series;
    rt.block_on(series.append("s".into(), (0..100_000).map(event).collect()))
        .unwrap();
    let mut before = 0i64;
    c.bench_function("memstore/timeseries/append_100_decreasing_into_100k", |b| {
        b.to_async(&rt).iter_batched(
            || {
                before -= 100;
                (before..before + 100).rev().map(event).collect::<Vec<Event>>()
            },
            |batch| async { series.append("s".into(), batch).await.unwrap() },
            BatchSize::SmallInput,
        )
    });
    let series = MemStore::new().series;
    rt.block_on(series.append("s".into(), (0..100_000).map(event).collect()))
        .unwrap();
    let aggregation = Aggregation {
        start_ms: 10_000,
        end_ms: 20_000,
        filters: Default::default(),
        bucket_ms: 1_000,
        metric: "v".into(),
        function: AggregateFunction::P99,
        group_by: vec!["host".into()],
    };
    c.bench_function("memstore/timeseries/aggregate_p99_10k_events", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(series.aggregate("s".into(), aggregation.clone()).await.unwrap()) })
    });
}

criterion_group!(benches, keyvalue, queue, timeseries);
criterion_main!(benches);
