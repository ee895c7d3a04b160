//! Faults against real servers, through the proxy: the backend is killed in the middle of
//! a run and started again on the same port and data folder.
//!
//! For each of redis (appendonly), postgres and nats (JetStream file storage):
//! - while the backend is down, a request fails with UNAVAILABLE (retryable) within the
//!   client's deadline, and `/readyz` says not ready;
//! - once it is back, requests succeed again without restarting the proxy, and `/readyz`
//!   is ready;
//! - messages the backend acknowledged before the crash are delivered afterwards, and a
//!   message acknowledged by a client does not come back.
//!
//! The servers run as processes (binaries from ci/install-servers.sh). A missing binary
//! fails the test under PRISM_ACCEPT_STRICT=1 (CI) and is reported as skipped otherwise.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use acceptance::provision::process::{self, Prepared};
use acceptance::provision::{self, ServerSpec, free_port, specs, wait_ready};
use bytes::Bytes;
use futures::StreamExt;
use prism_proxy::backends::nats::NatsConfig;
use prism_proxy::backends::postgres::PostgresConfig;
use prism_proxy::backends::redis::RedisConfig;
use prism_proxy::config::BackendConfig;
use prism_proxy::{BackendError, Interface};
use support::{drain, enqueue_and_ack_one, proxy_in_front, readyz, readyz_settles};

/// The proxy's deadline for each call; the driver's own timeout is shorter, so a dead
/// backend shows as UNAVAILABLE rather than DEADLINE_EXCEEDED.
const CLIENT_DEADLINE: Duration = Duration::from_secs(3);
const DRIVER_TIMEOUT: Duration = Duration::from_secs(1);

/// A server process that can be killed and started again with the same port and data.
struct Restartable {
    spec: &'static ServerSpec,
    prepared: Prepared,
    args: Vec<String>,
    addr: SocketAddr,
    child: Option<std::process::Child>,
}

impl Restartable {
    async fn start(spec: &'static ServerSpec, extra_args: &[&str]) -> anyhow::Result<Restartable> {
        let prepared = process::prepare(spec)?;
        let port = free_port()?;
        let mut args = (spec.args)(port, &prepared.data_dir());
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let mut server = Restartable {
            spec,
            prepared,
            args,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child: None,
        };
        server.up().await?;
        Ok(server)
    }

    async fn up(&mut self) -> anyhow::Result<()> {
        self.child = Some(process::spawn(self.spec, &self.prepared, &self.args)?);
        wait_ready(self.spec, self.addr).await
    }

    /// SIGKILL: no clean shutdown, as in a crash.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Restartable {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The server, or `None` when its binary is missing outside strict mode.
async fn server(spec: &'static ServerSpec, extra_args: &[&str]) -> Option<Restartable> {
    if !provision::binary_or_skip(spec) {
        return None;
    }
    Some(Restartable::start(spec, extra_args).await.expect("start the server"))
}

async fn crash_and_recover(mut server: Restartable, backend: BackendConfig) {
    let (proxy, backend) = proxy_in_front(
        backend,
        &[Interface::KeyvalueBasic, Interface::QueueBasic, Interface::PubsubBasic],
        CLIENT_DEADLINE,
    )
    .await;
    let (kv, queue, pubsub) = (
        backend.keyvalue_basic.expect("keyvalue_basic"),
        backend.queue_basic.expect("queue_basic"),
        backend.pubsub_basic.expect("pubsub_basic"),
    );
    // A subscription live across the crash.
    let mut subscription = pubsub.subscribe("t".into()).await.expect("subscribe");

    // Before the crash: data the backend acknowledged, and one message a client acked.
    kv.set(Bytes::from("k"), Bytes::from("v")).await.expect("set");
    let (sent, acked) = enqueue_and_ack_one(queue.as_ref(), "q", 5).await;
    assert_eq!(readyz(proxy.admin_addr).await, 200, "ready before the crash");

    server.kill();
    let started = Instant::now();
    let err = kv
        .get(Bytes::from("k"))
        .await
        .expect_err("a request while the backend is down");
    let took = started.elapsed();
    assert!(
        matches!(err, BackendError::Unavailable(_)) && err.retryable(),
        "expected a retryable UNAVAILABLE, got {err:?}"
    );
    assert!(
        took <= CLIENT_DEADLINE,
        "answered after {took:?}, past the {CLIENT_DEADLINE:?} deadline"
    );
    assert_eq!(
        readyz_settles(proxy.admin_addr, 503).await,
        503,
        "/readyz while the backend is down"
    );

    server.up().await.expect("restart the server");
    let recovered = Instant::now();
    let value = loop {
        match kv.get(Bytes::from("k")).await {
            Ok(value) => break value,
            Err(e) if recovered.elapsed() < Duration::from_secs(30) => {
                assert!(e.retryable(), "while recovering: {e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("still failing 30 s after the backend came back: {e:?}"),
        }
    };
    assert_eq!(value, Some(Bytes::from("v")), "the value written before the crash");
    assert_eq!(
        readyz_settles(proxy.admin_addr, 200).await,
        200,
        "ready once the backend is back"
    );

    // Every message acknowledged by the backend is still there, except the one acked.
    let delivered = drain(queue.as_ref(), "q", 4).await;
    let expected: BTreeSet<Bytes> = sent.into_iter().filter(|m| *m != acked).collect();
    assert_eq!(delivered, expected, "messages after the restart");

    // The subscription from before the crash never hangs silently: it either survived
    // (and gets what is published now) or ended with a retryable error.
    pubsub
        .publish("t".into(), Bytes::from("after"))
        .await
        .expect("publish after the restart");
    match tokio::time::timeout(Duration::from_secs(20), subscription.messages.next()).await {
        Ok(Some(Ok(m))) => assert_eq!(m.payload, Bytes::from("after")),
        Ok(Some(Err(e))) => assert!(e.retryable(), "the subscription ended with {e:?}"),
        Ok(None) => panic!("the subscription ended without saying why"),
        Err(_) => panic!("the subscription from before the crash hangs"),
    }
    // A new one works.
    let mut again = pubsub
        .subscribe("t2".into())
        .await
        .expect("subscribe after the restart");
    pubsub.publish("t2".into(), Bytes::from("x")).await.expect("publish");
    let m = tokio::time::timeout(Duration::from_secs(20), again.messages.next()).await;
    assert!(matches!(m, Ok(Some(Ok(_)))), "{m:?}");
    proxy.drain(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_crash_and_recovery() {
    let Some(server) = server(&specs::REDIS, &["--appendonly", "yes", "--appendfsync", "always"]).await else {
        return;
    };
    let url = (specs::REDIS.url)(server.addr);
    let backend = BackendConfig::Redis(RedisConfig {
        url,
        prefix: "faults:".into(),
        timeout: DRIVER_TIMEOUT,
    });
    crash_and_recover(server, backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crash_and_recovery() {
    let Some(server) = server(&specs::POSTGRES, &[]).await else {
        return;
    };
    let url = (specs::POSTGRES.url)(server.addr);
    let backend = BackendConfig::Postgres(PostgresConfig {
        url,
        prefix: "faults:".into(),
        timeout: DRIVER_TIMEOUT,
        pool_size: 4,
    });
    crash_and_recover(server, backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_crash_and_recovery() {
    let Some(server) = server(&specs::NATS, &[]).await else {
        return;
    };
    let url = (specs::NATS.url)(server.addr);
    let backend = BackendConfig::Nats(NatsConfig {
        prefix: "faults".into(),
        timeout: DRIVER_TIMEOUT,
        ack_wait: Duration::from_secs(5),
        ..NatsConfig::new(&url)
    });
    crash_and_recover(server, backend).await;
}
