//! What the server tests share: a PostgreSQL to talk to, a proxy in front of a backend,
//! its `/readyz`, and draining a queue.
#![allow(dead_code)] // each test file uses a part

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use prism_proxy::Interface;
use prism_proxy::backends::Backend;
use prism_proxy::client::PrismClient;
use prism_proxy::config::{BackendConfig, Config, NamespaceConfig};
use prism_proxy::interfaces::QueueBasic;
use prism_proxy::server::RunningProxy;

/// A PostgreSQL process, its URL and an admin session; `None` when the binary is missing
/// outside strict mode (the skip is printed).
pub async fn postgres() -> Option<(acceptance::Instance, String, tokio_postgres::Client)> {
    use acceptance::provision::{self, process, specs};
    if !provision::binary_or_skip(&specs::POSTGRES) {
        return None;
    }
    let instance = process::start(&specs::POSTGRES).await.expect("start postgres");
    let url = instance.url.clone().expect("url");
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    Some((instance, url, admin))
}

/// A proxy with one namespace, `faults`, serving `interfaces` from `backend`, and a
/// client of it whose every call has `deadline`.
pub async fn proxy_in_front(
    backend: BackendConfig,
    interfaces: &[Interface],
    deadline: Duration,
) -> (RunningProxy, Backend) {
    let mut namespace = NamespaceConfig::new(backend);
    namespace.interfaces = Some(interfaces.to_vec());
    let config = Config::ephemeral([("faults".to_string(), namespace)]);
    let proxy = prism_proxy::server::start(&config).await.expect("start the proxy");
    let client = PrismClient::connect(&format!("http://{}", proxy.grpc_addr), "faults")
        .await
        .expect("connect")
        .with_timeout(deadline);
    let backend = client.backend(interfaces);
    (proxy, backend)
}

pub async fn readyz(admin: SocketAddr) -> u16 {
    prism_proxy::test_util::http_get(admin, "/readyz")
        .await
        .expect("GET /readyz")
        .0
}

/// What `/readyz` settles on within 10 s: it answers from a round of checks at most 1 s
/// old (shared by every probe), each bounded by the driver's time-out.
pub async fn readyz_settles(admin: SocketAddr, expected: u16) -> u16 {
    let started = Instant::now();
    loop {
        let code = readyz(admin).await;
        if code == expected || started.elapsed() > Duration::from_secs(10) {
            return code;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Receives and acks messages of `queue` until `count` distinct payloads came or 20 s
/// passed; the payloads.
pub async fn drain(queue: &dyn QueueBasic, name: &str, count: usize) -> BTreeSet<Bytes> {
    let mut delivered = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while delivered.len() < count && Instant::now() < deadline {
        let got = queue
            .receive(name.into(), 10, Duration::from_secs(60), Duration::from_secs(1))
            .await
            .unwrap_or_default();
        for m in got {
            assert!(
                queue.ack(name.into(), m.receipt).await.expect("ack"),
                "a fresh receipt acks"
            );
            delivered.insert(m.payload);
        }
    }
    delivered
}

/// Enqueues `count` messages (`m0`, `m1`, ...) on `name`, then receives one and acks it:
/// the messages sent, and the payload a client acked.
pub async fn enqueue_and_ack_one(queue: &dyn QueueBasic, name: &str, count: usize) -> (BTreeSet<Bytes>, Bytes) {
    let sent: BTreeSet<Bytes> = (0..count).map(|i| Bytes::from(format!("m{i}"))).collect();
    for m in &sent {
        queue.enqueue(name.into(), m.clone()).await.expect("enqueue");
    }
    let first = queue
        .receive(name.into(), 1, Duration::from_secs(60), Duration::from_secs(2))
        .await
        .expect("receive");
    assert_eq!(first.len(), 1, "one message received");
    assert!(queue.ack(name.into(), first[0].receipt.clone()).await.expect("ack"));
    (sent, first[0].payload.clone())
}
