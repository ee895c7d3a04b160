//! Numbers beside the verdicts: after the suites, each ready target, directly and
//! through the in-process proxy, answers a fixed small workload per operation, one call
//! at a time; p50 and p99 go into the report. Recorded, never asserted: the machine is
//! shared, and these say where time goes, not whether a backend conforms.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use prism_proxy::backends::Backend;
use prism_proxy::interfaces::{Event, Query};

use crate::report::OperationLatency;

/// Calls per operation: enough for a p99 with a few samples past it.
const CALLS: u64 = 200;

/// Times every operation `backend` serves, under keys and names starting with `prefix`.
pub(super) async fn measure(target: &str, backend: &Backend, prefix: &str) -> Vec<OperationLatency> {
    let mut out = Vec::new();
    let key = |i: u64| Bytes::from(format!("{prefix}k{}", i % 16));
    let value = Bytes::from(vec![b'v'; 128]);
    if let Some(kv) = &backend.keyvalue_basic {
        out.push(time(target, "keyvalue.set", |i| kv.set(key(i), value.clone())).await);
        out.push(time(target, "keyvalue.get", |i| kv.get(key(i))).await);
        out.push(time(target, "keyvalue.exists", |i| kv.exists(key(i))).await);
        out.push(time(target, "keyvalue.delete", |i| kv.delete(key(i))).await);
    }
    if let Some(ttl) = &backend.keyvalue_ttl {
        let ttl_value = Duration::from_secs(60);
        out.push(
            time(target, "keyvalue.set_with_ttl", |i| {
                ttl.set_with_ttl(key(i), value.clone(), ttl_value)
            })
            .await,
        );
        out.push(time(target, "keyvalue.ttl", |i| ttl.ttl(key(i))).await);
    }
    if let Some(scan) = &backend.keyvalue_scan {
        let scan_prefix = Bytes::from(prefix.to_string());
        out.push(time(target, "keyvalue.scan", |_| scan.scan(scan_prefix.clone(), 10, None)).await);
    }
    if let Some(pubsub) = &backend.pubsub_basic {
        let topic = format!("{prefix}t");
        out.push(
            time(target, "pubsub.publish", |_| {
                pubsub.publish(topic.clone(), value.clone())
            })
            .await,
        );
    }
    if let Some(queue) = &backend.queue_basic {
        let name = format!("{prefix}q");
        out.push(time(target, "queue.enqueue", |_| queue.enqueue(name.clone(), value.clone())).await);
        let visibility = Duration::from_secs(60);
        out.push(
            time(target, "queue.receive", |_| {
                queue.receive(name.clone(), 1, visibility, Duration::ZERO)
            })
            .await,
        );
    }
    if let Some(series) = &backend.timeseries_basic {
        let stream = format!("{prefix}s");
        let event = |i: u64| Event {
            timestamp_ms: 1_700_000_000_000 + i as i64,
            tags: [("host".to_string(), format!("h{}", i % 4))].into(),
            fields: [("v".to_string(), i as f64)].into(),
        };
        out.push(
            time(target, "timeseries.append", |i| {
                series.append(stream.clone(), vec![event(i)])
            })
            .await,
        );
        let query = Query {
            start_ms: 1_700_000_000_000,
            end_ms: 1_700_000_001_000,
            limit: 10,
            ..Query::default()
        };
        out.push(
            time(target, "timeseries.query", |_| {
                series.query(stream.clone(), query.clone())
            })
            .await,
        );
    }
    out
}

/// `CALLS` calls of `call`, one at a time; failures are counted, not timed.
async fn time<T, E, F, Fut>(target: &str, operation: &str, call: F) -> OperationLatency
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    // 1 us to 60 s at three significant digits; a value past it is clamped.
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).ok();
    let mut failed = 0;
    for i in 0..CALLS {
        let started = Instant::now();
        let ok = call(i).await.is_ok();
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match (&mut histogram, ok) {
            (Some(h), true) => h.saturating_record(micros.max(1)),
            _ => failed += 1,
        }
    }
    let (calls, p50_us, p99_us) = match &histogram {
        Some(h) if !h.is_empty() => (h.len(), h.value_at_quantile(0.5), h.value_at_quantile(0.99)),
        _ => (0, 0, 0),
    };
    OperationLatency {
        target: target.to_string(),
        operation: operation.to_string(),
        calls,
        failed,
        p50_us,
        p99_us,
    }
}
