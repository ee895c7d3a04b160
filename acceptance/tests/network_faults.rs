//! Networks that misbehave between the proxy and its backend: a nemesis
//! (`acceptance::nemesis::FaultProxy`, a TCP proxy in the test) sits between the Prism
//! proxy and a real server (a process from ci/install-servers.sh), for redis, postgres
//! and nats. In turn:
//! - latency below the driver's deadline: requests succeed, slower;
//! - latency beyond it: the proxy answers within the client's deadline with a retryable
//!   UNAVAILABLE (its own, not the client giving up); healed, it serves again;
//! - a bandwidth limit under a 256 KiB write: refused within the deadline, retryable, and
//!   afterwards the key holds the old value or the whole new one, never part of it;
//! - connections reset mid-request: every request answers ok or retryable, and every
//!   write acknowledged is readable afterwards;
//! - a black hole (accepted, nothing answered): retryable errors within the deadline,
//!   `/readyz` 503; healed, it serves again without a restart and `/readyz` is 200;
//! - at the end the writes acknowledged before the faults are readable, and the queue's
//!   messages are all there but the one a client acked before the faults.
//!
//! A missing server binary fails the test under PRISM_ACCEPT_STRICT=1 (CI) and is
//! reported as skipped otherwise.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use acceptance::nemesis::{FaultProxy, Toxic};
use acceptance::provision::{self, ServerSpec, process, specs};
use bytes::Bytes;
use prism_proxy::backends::nats::NatsConfig;
use prism_proxy::backends::postgres::PostgresConfig;
use prism_proxy::backends::redis::RedisConfig;
use prism_proxy::config::BackendConfig;
use prism_proxy::interfaces::{KeyValueBasic, QueueBasic};
use prism_proxy::{BackendError, Interface};
use support::{drain, enqueue_and_ack_one, proxy_in_front, readyz, readyz_settles};

/// The client's deadline per call; the driver's own is shorter, so a backend that does
/// not answer shows as the proxy's UNAVAILABLE, before the client gives up.
const CLIENT_DEADLINE: Duration = Duration::from_secs(4);
const DRIVER_TIMEOUT: Duration = Duration::from_secs(1);

struct Stage {
    _server: acceptance::Instance,
    nemesis: FaultProxy,
    proxy: prism_proxy::server::RunningProxy,
    kv: Arc<dyn KeyValueBasic>,
    queue: Arc<dyn QueueBasic>,
}

/// The server as a process, the nemesis in front of it, and a proxy whose driver
/// reaches the server through the nemesis; `None` when the binary is missing.
async fn stage(spec: &'static ServerSpec, backend: fn(url: String) -> BackendConfig) -> Option<Stage> {
    if !provision::binary_or_skip(spec) {
        return None;
    }
    let server = process::start(spec).await.expect("start the server");
    let nemesis = FaultProxy::start(server.addr.expect("the server's address"))
        .await
        .expect("start the nemesis");
    let (proxy, backend) = proxy_in_front(
        backend((spec.url)(nemesis.addr())),
        &[Interface::KeyvalueBasic, Interface::QueueBasic],
        CLIENT_DEADLINE,
    )
    .await;
    Some(Stage {
        _server: server,
        nemesis,
        proxy,
        kv: backend.keyvalue_basic.expect("keyvalue_basic"),
        queue: backend.queue_basic.expect("queue_basic"),
    })
}

/// A failure the proxy itself gave, within the client's deadline, that says to retry.
fn assert_proxy_refused(what: &str, result: Result<impl std::fmt::Debug, BackendError>, took: Duration) {
    match result {
        Err(e @ BackendError::Unavailable(_)) => assert!(e.retryable(), "{what}: {e:?}"),
        other => panic!("{what}: expected the proxy's retryable UNAVAILABLE, got {other:?} after {took:?}"),
    }
    assert!(took < CLIENT_DEADLINE, "{what}: answered after {took:?}");
}

/// Until `kv` serves again (a healed network needs no restart): how long it took.
async fn serves_again(kv: &dyn KeyValueBasic, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        match kv.get(Bytes::from("k0")).await {
            Ok(value) => {
                assert_eq!(value, Some(Bytes::from("v0")), "{what}: the value from before");
                return started.elapsed();
            }
            Err(e) if started.elapsed() < Duration::from_secs(30) => {
                assert!(e.retryable(), "{what}: while recovering: {e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("{what}: still failing 30 s after healing: {e:?}"),
        }
    }
}

async fn misbehave(stage: Stage) {
    let Stage {
        nemesis,
        proxy,
        kv,
        queue,
        ..
    } = &stage;
    // Before the faults: a write, and a queue with one message acked by a client.
    kv.set(Bytes::from("k0"), Bytes::from("v0")).await.expect("set");
    let (sent, acked) = enqueue_and_ack_one(queue.as_ref(), "q", 4).await;
    assert_eq!(readyz(proxy.admin_addr).await, 200, "ready before the faults");
    let started = Instant::now();
    kv.get(Bytes::from("k0")).await.expect("get");
    let baseline = started.elapsed();

    // Latency below the driver's deadline: served, and the delay is on the path.
    let delay = Duration::from_millis(150);
    nemesis.set(Toxic::Latency(delay));
    let started = Instant::now();
    let value = kv.get(Bytes::from("k0")).await.expect("a get under 150 ms of latency");
    let slow = started.elapsed();
    assert_eq!(value, Some(Bytes::from("v0")));
    assert!(
        slow >= delay,
        "took {slow:?} (baseline {baseline:?}): the latency is not on the path"
    );

    // Beyond it: the proxy's own retryable answer, before the client's deadline.
    nemesis.set(Toxic::Latency(Duration::from_secs(3)));
    let started = Instant::now();
    let result = kv.get(Bytes::from("k0")).await;
    assert_proxy_refused("a get under 3 s of latency", result, started.elapsed());
    nemesis.heal();
    serves_again(kv.as_ref(), "after the latency").await;

    // A bandwidth limit under a large write: refused in time, and never half applied.
    let big = Bytes::from(vec![b'x'; 256 * 1024]);
    nemesis.set(Toxic::Bandwidth(32 * 1024));
    let started = Instant::now();
    let result = kv.set(Bytes::from("big"), big.clone()).await;
    assert_proxy_refused("a 256 KiB set at 32 KiB/s", result, started.elapsed());
    nemesis.heal();
    serves_again(kv.as_ref(), "after the bandwidth limit").await;
    // The write may still land once healed; whatever is there is all of it or nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let landed = kv.get(Bytes::from("big")).await.expect("get after the limit");
    assert!(
        landed.is_none() || landed.as_ref() == Some(&big),
        "a partial value: {} bytes",
        landed.map_or(0, |v| v.len())
    );

    // Connections reset mid-request: ok or retryable, and what was acknowledged stays.
    nemesis.set(Toxic::Latency(Duration::from_millis(300)));
    let writes = (0..20).map(|i| {
        let kv = kv.clone();
        async move {
            (
                i,
                kv.set(Bytes::from(format!("r{i}")), Bytes::from(format!("v{i}"))).await,
            )
        }
    });
    let resetting = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let open = nemesis.open_connections();
        nemesis.reset_all();
        open
    };
    let (results, open) = tokio::join!(futures::future::join_all(writes), resetting);
    assert!(open > 0, "no connection was open to reset");
    nemesis.heal();
    let mut acknowledged = Vec::new();
    for (i, result) in results {
        match result {
            Ok(()) => acknowledged.push(i),
            Err(e) => assert!(e.retryable(), "write r{i} after a reset: {e:?}"),
        }
    }
    serves_again(kv.as_ref(), "after the resets").await;
    for i in acknowledged {
        let value = kv.get(Bytes::from(format!("r{i}"))).await.expect("get");
        assert_eq!(value, Some(Bytes::from(format!("v{i}"))), "acknowledged write r{i}");
    }

    // A black hole: refused in time, not ready; healed, served again, ready.
    nemesis.set(Toxic::BlackHole);
    let started = Instant::now();
    let result = kv.get(Bytes::from("k0")).await;
    assert_proxy_refused("a get into a black hole", result, started.elapsed());
    assert_eq!(
        readyz_settles(proxy.admin_addr, 503).await,
        503,
        "/readyz in a black hole"
    );
    nemesis.heal();
    serves_again(kv.as_ref(), "after the black hole").await;
    assert_eq!(readyz_settles(proxy.admin_addr, 200).await, 200, "/readyz once healed");

    // Every message is still there but the one a client acked.
    let delivered = drain(queue.as_ref(), "q", sent.len() - 1).await;
    let expected: BTreeSet<Bytes> = sent.into_iter().filter(|m| *m != acked).collect();
    assert_eq!(delivered, expected, "the queue after the faults");
    stage.proxy.drain(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_behind_a_misbehaving_network() {
    let stage = stage(&specs::REDIS, |url| {
        BackendConfig::Redis(RedisConfig {
            url,
            prefix: "net:".into(),
            timeout: DRIVER_TIMEOUT,
        })
    });
    if let Some(stage) = stage.await {
        misbehave(stage).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_behind_a_misbehaving_network() {
    let stage = stage(&specs::POSTGRES, |url| {
        BackendConfig::Postgres(PostgresConfig {
            url,
            prefix: "net:".into(),
            timeout: DRIVER_TIMEOUT,
            pool_size: 4,
        })
    });
    if let Some(stage) = stage.await {
        misbehave(stage).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_behind_a_misbehaving_network() {
    let stage = stage(&specs::NATS, |url| {
        BackendConfig::Nats(NatsConfig {
            prefix: "net".into(),
            timeout: DRIVER_TIMEOUT,
            ack_wait: Duration::from_secs(5),
            ..NatsConfig::new(&url)
        })
    });
    if let Some(stage) = stage.await {
        misbehave(stage).await;
    }
}
