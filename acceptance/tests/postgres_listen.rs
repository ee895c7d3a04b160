//! The PostgreSQL driver's subscriptions against a real PostgreSQL (a process from
//! ci/install-servers.sh), counted by the server itself (`pg_stat_activity`): however
//! many subscriptions a namespace has, they share one LISTEN connection, every
//! subscriber gets its messages, and publishing uses the pool, not a connection per
//! subscriber (the defect: every subscription opened its own connection, so about 100
//! could exhaust `max_connections` for every namespace on the server).
//!
//! A missing PostgreSQL fails under PRISM_ACCEPT_STRICT=1 (CI) and is reported as
//! skipped otherwise.

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use prism_proxy::backends::postgres::PostgresConfig;
use prism_proxy::config::BackendConfig;

/// Sessions on the server other than the one asking.
async fn sessions(admin: &tokio_postgres::Client) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_activity")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_share_one_listen_connection() {
    let Some((_instance, url, admin)) = support::postgres().await else {
        return;
    };
    let pool_size = 4;
    let backend = BackendConfig::Postgres(PostgresConfig {
        url: url.clone(),
        prefix: "listen:".into(),
        timeout: Duration::from_secs(5),
        pool_size,
    })
    .connect()
    .await
    .expect("driver");
    let pubsub = backend.pubsub_basic.expect("postgres serves pubsub_basic");
    pubsub.publish("warm".into(), Bytes::from("x")).await.expect("publish");
    let before = sessions(&admin).await;

    let (mut shared, mut own) = (Vec::new(), Vec::new());
    for i in 0..100 {
        shared.push(pubsub.subscribe("shared".into()).await.expect("subscribe"));
        own.push(pubsub.subscribe(format!("own{i}")).await.expect("subscribe"));
    }
    for i in 0..100 {
        pubsub
            .publish(format!("own{i}"), Bytes::from("o"))
            .await
            .expect("publish");
    }
    pubsub
        .publish("shared".into(), Bytes::from("m"))
        .await
        .expect("publish");
    let during = sessions(&admin).await;
    let listening: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE (query ILIKE 'LISTEN %' OR query LIKE '%AS prism_barrier') AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("pg_stat_activity")
        .get(0);
    assert_eq!(
        listening, 1,
        "sessions whose last command was a LISTEN or a subscriber's barrier mark"
    );
    eprintln!("sessions: {before} before, {during} with 200 subscriptions (pool_size {pool_size})");
    assert!(
        during - before <= 1 + pool_size as i64,
        "{} more server sessions for 200 subscriptions",
        during - before
    );
    for s in &mut shared {
        let m = tokio::time::timeout(Duration::from_secs(30), s.messages.next()).await;
        assert!(matches!(&m, Ok(Some(Ok(m))) if m.payload == "m"), "{m:?}");
    }
    for s in &mut own {
        let m = tokio::time::timeout(Duration::from_secs(30), s.messages.next()).await;
        assert!(matches!(&m, Ok(Some(Ok(m))) if m.payload == "o"), "{m:?}");
    }
}

/// NOTIFY carries the driver's envelope in base64, so the driver takes payloads up to
/// its own bound (5 989 bytes): one of exactly that size is delivered whole, one byte
/// more is refused naming the field (a mutant refusing the bound itself passed every
/// case; the old bound, 5 990, was itself one byte past what PostgreSQL takes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_at_the_notify_bound_is_delivered_and_one_byte_more_refused() {
    let Some((_instance, url, _admin)) = support::postgres().await else {
        return;
    };
    let backend = BackendConfig::Postgres(PostgresConfig {
        url,
        prefix: "bound:".into(),
        timeout: Duration::from_secs(5),
        pool_size: 2,
    })
    .connect()
    .await
    .expect("driver");
    let pubsub = backend.pubsub_basic.expect("postgres serves pubsub_basic");
    let mut sub = pubsub.subscribe("big".into()).await.expect("subscribe");
    let at_bound = Bytes::from(vec![b'x'; 5_989]);
    pubsub
        .publish("big".into(), at_bound.clone())
        .await
        .expect("publish at the bound");
    let got = tokio::time::timeout(Duration::from_secs(10), sub.messages.next()).await;
    assert!(matches!(&got, Ok(Some(Ok(m))) if m.payload == at_bound), "{got:?}");
    let over = pubsub.publish("big".into(), Bytes::from(vec![b'x'; 5_990])).await;
    assert!(
        matches!(&over, Err(prism_proxy::BackendError::InvalidArgument { field, .. }) if field == "payload"),
        "{over:?}"
    );
}
