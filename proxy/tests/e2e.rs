//! End to end: the real `prism-proxy` binary on 127.0.0.1:0, called over gRPC through
//! `PrismClient` (and the raw generated clients where the wire itself is under test).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{CONFIG, Proxy, http_get, run_binary};
use futures::StreamExt;
use prism_proto::keyvalue::v1::{GetRequest, key_value_basic_client::KeyValueBasicClient};
use prism_proxy::BackendError;
use prism_proxy::client::{MethodPath, PrismClient};
use prism_proxy::interfaces::*;
use prism_proxy::status::is_retryable;
use tonic::Code;
use tonic_types::StatusExt;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

const VIS: Duration = Duration::from_secs(30);

/// A client of namespace `default`, over the direct h2 connection or tonic's channel.
async fn client_of(proxy: &Proxy, direct: bool) -> PrismClient {
    if direct {
        PrismClient::connect_direct(&proxy.endpoint(), "default")
            .await
            .expect("direct")
    } else {
        proxy.client("default").await
    }
}

/// Over both transports: tonic's channel and the direct h2 connection the load
/// generator uses (unary calls framed by the client itself, subscriptions over tonic's
/// generated client on that connection); and the proxy on either runtime.
#[rstest::rstest]
#[case::channel(false, &[])]
#[case::direct(true, &[])]
#[case::current_thread_runtime(true, &["--runtime", "current-thread"])]
#[tokio::test]
async fn every_interface_over_grpc(#[case] direct: bool, #[case] args: &[&str]) {
    let proxy = Proxy::start_with_args(CONFIG, args);
    let c = client_of(&proxy, direct).await;

    // keyvalue_basic
    assert_eq!(c.get(b("missing")).await.unwrap(), None);
    c.set(b("k"), b("")).await.unwrap();
    assert_eq!(
        c.get(b("k")).await.unwrap(),
        Some(b("")),
        "empty value is distinct from missing"
    );
    c.set(b("k"), b("v2")).await.unwrap();
    assert_eq!(c.get(b("k")).await.unwrap(), Some(b("v2")));
    assert!(c.exists(b("k")).await.unwrap());
    assert!(c.delete(b("k")).await.unwrap());
    assert!(!c.delete(b("k")).await.unwrap());

    // keyvalue_ttl
    c.set_with_ttl(b("t"), b("v"), Duration::from_millis(300))
        .await
        .unwrap();
    match c.ttl(b("t")).await.unwrap() {
        TtlState::Expiring(left) => assert!(left <= Duration::from_millis(300) && !left.is_zero(), "{left:?}"),
        other => panic!("expected expiring, got {other:?}"),
    }
    assert_eq!(c.ttl(b("nope")).await.unwrap(), TtlState::Missing);
    c.set(b("p"), b("v")).await.unwrap();
    assert_eq!(c.ttl(b("p")).await.unwrap(), TtlState::Persistent);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.get(b("t")).await.unwrap(), None, "expired over the wire too");

    // keyvalue_scan + keyvalue_batch
    let entries = (0..25).map(|i| (b(&format!("s:{i:02}")), b("x"))).collect();
    assert_eq!(c.batch_set(entries).await.unwrap(), vec![true; 25]);
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let page = c.scan(b("s:"), 10, cursor).await.unwrap();
        keys.extend(page.keys);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(keys, (0..25).map(|i| b(&format!("s:{i:02}"))).collect::<Vec<_>>());
    assert_eq!(c.count(b("s:")).await.unwrap(), 25);
    assert_eq!(
        c.batch_get(vec![b("s:01"), b("zz")]).await.unwrap(),
        vec![Some(b("x")), None]
    );
    assert_eq!(
        c.batch_delete(vec![b("s:01"), b("s:01")]).await.unwrap(),
        vec![true, false]
    );

    // pubsub_basic: fan-out to 3, nothing from before subscribing
    c.publish("news".into(), b("early")).await.unwrap();
    let mut subs = Vec::new();
    for _ in 0..3 {
        subs.push(c.subscribe("news".into()).await.unwrap());
    }
    assert_eq!(c.publish("news".into(), b("hello")).await.unwrap(), 3);
    for sub in &mut subs {
        let m = tokio::time::timeout(Duration::from_secs(5), sub.messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(m.payload, b("hello"));
    }
    assert!(c.unsubscribe(&subs[0].id).await.unwrap());
    let ended = tokio::time::timeout(Duration::from_secs(5), subs[0].messages.next())
        .await
        .unwrap();
    assert!(ended.is_none(), "unsubscribe ends the stream");

    // queue_basic
    c.enqueue("jobs".into(), b("j1")).await.unwrap();
    let got = c
        .receive("jobs".into(), 5, Duration::from_millis(200), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let again = c.receive("jobs".into(), 5, VIS, Duration::from_secs(2)).await.unwrap();
    assert_eq!(again.len(), 1, "redelivered after the visibility timeout");
    assert_eq!(again[0].delivery_count, 2);
    assert!(c.ack("jobs".into(), again[0].receipt.clone()).await.unwrap());
    assert!(!c.nack("jobs".into(), again[0].receipt.clone()).await.unwrap());

    // timeseries_basic
    let ev = |ts: i64, v: f64| Event {
        timestamp_ms: ts,
        tags: [("h".into(), "a".into())].into(),
        fields: [("cpu".into(), v)].into(),
    };
    assert_eq!(
        c.append("m".into(), vec![ev(5, 1.0), ev(15, 3.0), ev(12, 2.0)])
            .await
            .unwrap(),
        3
    );
    let q = Query {
        start_ms: 0,
        end_ms: 15,
        filters: [("h".into(), "a".into())].into(),
        limit: 0,
    };
    let events = c.query("m".into(), q).await.unwrap();
    assert_eq!(events.iter().map(|e| e.timestamp_ms).collect::<Vec<_>>(), vec![5, 12]);
    let agg = Aggregation {
        start_ms: 0,
        end_ms: 100,
        filters: Default::default(),
        bucket_ms: 10,
        metric: "cpu".into(),
        function: AggregateFunction::Sum,
        group_by: vec!["h".into()],
    };
    let rows = c.aggregate("m".into(), agg).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| (r.bucket_start_ms, r.value)).collect::<Vec<_>>(),
        vec![(0, 1.0), (10, 5.0)]
    );
    assert_eq!(rows[1].group.get("h").map(String::as_str), Some("a"));

    // meta
    let info = c.describe().await.unwrap();
    assert_eq!((info.backend.as_str(), info.interfaces.len()), ("memstore", 7));
}

#[tokio::test]
async fn namespaces_are_isolated() {
    let proxy = Proxy::start(CONFIG);
    let a = proxy.client("default").await;
    let b_ = proxy.client("tiny").await;
    a.set(b("k"), b("a")).await.unwrap();
    assert_eq!(b_.get(b("k")).await.unwrap(), None);
}

#[tokio::test]
async fn unknown_or_missing_namespace_is_refused_with_reason() {
    let proxy = Proxy::start(CONFIG);
    let err = proxy.client("nope").await.get(b("k")).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::NotFound(m) if m.contains("nope") && m.contains("default")),
        "{err:?}"
    );

    let mut raw = KeyValueBasicClient::connect(proxy.endpoint()).await.unwrap();
    let status = raw.get(GetRequest { key: b("k") }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("x-prism-namespace"), "{}", status.message());
    let info = status
        .get_error_details()
        .error_info()
        .cloned()
        .expect("ErrorInfo detail");
    assert_eq!(info.reason, "UNKNOWN_NAMESPACE");
    assert_eq!(info.domain, prism_proto::ERROR_DOMAIN);
    assert!(!is_retryable(&status));
}

/// A message over its namespace's `max_message_bytes` is INVALID_ARGUMENT naming the
/// limit, with the standard details, like any other request over a limit (tonic alone
/// says OUT_OF_RANGE); each namespace has its own limit.
#[tokio::test]
async fn a_message_over_the_namespace_message_limit_is_invalid_argument_with_details() {
    let proxy = Proxy::start(CONFIG);
    let mut raw = KeyValueBasicClient::connect(proxy.endpoint()).await.unwrap();
    let mut request = tonic::Request::new(prism_proto::keyvalue::v1::SetRequest {
        key: b("k"),
        value: Bytes::from(vec![0u8; 17 * 1024 * 1024]),
    });
    request
        .metadata_mut()
        .insert("x-prism-namespace", "default".parse().unwrap());
    let status = raw.set(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let info = status.get_error_details().error_info().cloned().expect("ErrorInfo");
    assert_eq!(info.reason, "INVALID_ARGUMENT");
    assert_eq!(
        info.metadata.get("limit").map(String::as_str),
        Some("max_message_bytes=16777216")
    );
    assert!(status.message().contains("declares"), "{}", status.message());
    // `sessions` allows 131072 bytes: a 200 KB message is refused there, served in `default`.
    let (default, sessions) = (proxy.client("default").await, proxy.client("sessions").await);
    default
        .set(b("k"), Bytes::from(vec![1u8; 200_000]))
        .await
        .expect("under default's limit");
    let err = sessions.set(b("k"), Bytes::from(vec![1u8; 200_000])).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::InvalidArgument { limit: Some(l), .. } if l == "max_message_bytes=131072"),
        "{err:?}"
    );
    // The proxy's own client reads it as the same error.
    let err = proxy
        .client("default")
        .await
        .set(b("k"), Bytes::from(vec![0u8; 17 * 1024 * 1024]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BackendError::InvalidArgument { limit: Some(l), .. } if l == "max_message_bytes=16777216"),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversize_value_names_field_and_limit() {
    let proxy = Proxy::start(CONFIG);
    let c = proxy.client("sessions").await;
    c.set(b("k"), Bytes::from(vec![7u8; 65536]))
        .await
        .expect("value at the limit is fine");
    let err = c.set(b("k"), Bytes::from(vec![7u8; 65537])).await.unwrap_err();
    match err {
        BackendError::InvalidArgument { field, limit, message } => {
            assert_eq!(field, "value");
            assert_eq!(limit.as_deref(), Some("max_value_bytes=65536"));
            assert!(message.contains("65537"), "{message}");
        }
        other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
    }
    let err = c.get(Bytes::from(vec![1u8; 1025])).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::InvalidArgument { field, .. } if field == "key"),
        "{err:?}"
    );
    let err = c.get(Bytes::new()).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::InvalidArgument { field, .. } if field == "key"),
        "{err:?}"
    );
}

#[tokio::test]
async fn interface_not_served_is_unimplemented() {
    let proxy = Proxy::start(CONFIG);
    let c = proxy.client("sessions").await;
    let err = c.enqueue("q".into(), b("x")).await.unwrap_err();
    assert!(
        matches!(&err, BackendError::Unimplemented(m) if m.contains("queue_basic") && m.contains("sessions")),
        "{err:?}"
    );
    let err = c.scan(b(""), 10, None).await.unwrap_err();
    assert!(matches!(err, BackendError::Unimplemented(_)), "{err:?}");
    let info = c.describe().await.unwrap();
    assert_eq!(
        info.interfaces,
        vec![
            prism_proxy::Interface::KeyvalueBasic,
            prism_proxy::Interface::KeyvalueTtl
        ]
    );
}

#[tokio::test]
async fn in_flight_limit_gives_retryable_resource_exhausted() {
    let proxy = Proxy::start(CONFIG);
    let c = proxy.client("tiny").await;
    // Two long polls hold both permits of `tiny`.
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.receive("q".into(), 1, VIS, Duration::from_secs(2)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut raw = KeyValueBasicClient::new(c.transport().clone());
    let mut request = tonic::Request::new(GetRequest { key: b("k") });
    request
        .metadata_mut()
        .insert("x-prism-namespace", "tiny".parse().unwrap());
    let status = raw.get(request).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(is_retryable(&status));
    assert!(status.get_error_details().retry_info().is_some());
    for w in waiters {
        assert!(w.await.unwrap().unwrap().is_empty());
    }
    c.get(b("k")).await.expect("permits come back");
}

#[tokio::test]
async fn health_and_reflection_services_answer() {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let proxy = Proxy::start(CONFIG);
    let channel = tonic::transport::Endpoint::from_shared(proxy.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "prism.keyvalue.v1.KeyValueBasic", "prism.queue.v1.QueueBasic"] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.Nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "prism.keyvalue.v1.KeyValueBasic",
        "prism.keyvalue.v1.KeyValueTtl",
        "prism.keyvalue.v1.KeyValueScan",
        "prism.keyvalue.v1.KeyValueBatch",
        "prism.pubsub.v1.PubSubBasic",
        "prism.queue.v1.QueueBasic",
        "prism.timeseries.v1.TimeSeriesBasic",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
}

#[tokio::test]
async fn admin_endpoints_report_health_readiness_and_metrics() {
    let proxy = Proxy::start(CONFIG);
    assert_eq!(http_get(proxy.admin, "/healthz").await.0, 200);
    let (code, body) = http_get(proxy.admin, "/readyz").await;
    assert_eq!(code, 200);
    assert!(body.contains("default (memstore): ok"), "{body}");
    let c = proxy.client("default").await;
    for _ in 0..3 {
        c.get(b("k")).await.unwrap();
    }
    let _ = proxy
        .client("sessions")
        .await
        .set(b("k"), Bytes::from(vec![0; 70_000]))
        .await;
    let (code, metrics) = http_get(proxy.admin, "/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains(r#"prism_requests_total{code="OK",namespace="default",operation="keyvalue.get"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"prism_requests_total{code="INVALID_ARGUMENT",namespace="sessions",operation="keyvalue.set"} 1"#
        )
    );
    assert!(
        metrics.contains(r#"prism_request_duration_seconds_count{namespace="default",operation="keyvalue.get"} 3"#)
    );
    assert!(metrics.contains(r#"prism_build_info{version=""#), "{metrics}");
    assert!(
        metrics.contains(r#"prism_backend_up{backend="memstore",namespace="default"} 1"#),
        "{metrics}"
    );
}

/// Requests refused while routing count like any other: an unknown namespace under
/// `namespace=""`, an interface the namespace does not serve under that namespace.
#[tokio::test]
async fn requests_refused_while_routing_appear_in_metrics() {
    let proxy = Proxy::start(CONFIG);
    let unknown = proxy.client("nope").await.get(b("k")).await;
    assert!(matches!(unknown, Err(BackendError::NotFound(_))), "{unknown:?}");
    let not_served = proxy.client("sessions").await.enqueue("q".into(), b("m")).await;
    assert!(
        matches!(not_served, Err(BackendError::Unimplemented(_))),
        "{not_served:?}"
    );
    let (_, metrics) = http_get(proxy.admin, "/metrics").await;
    for line in [
        r#"prism_requests_total{code="NOT_FOUND",namespace="",operation="keyvalue.get"} 1"#,
        r#"prism_requests_total{code="UNIMPLEMENTED",namespace="sessions",operation="queue.enqueue"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
    assert!(
        !metrics.contains(r#"code="OK",namespace="""#),
        "no OK series for refusals:\n{metrics}"
    );
}

/// A backend that does not answer at start is a warning naming the namespace and the
/// server, with the password hidden; the proxy serves anyway.
#[test]
fn a_backend_down_at_start_is_a_warning_without_credentials() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        "drain_timeout: 2s\nnamespaces:\n  cache:\n    backend: {{ type: redis, url: 'redis://app:s3cret@127.0.0.1:{port}', timeout: 500ms }}\n"
    );
    let mut proxy = Proxy::start(&config);
    // The start-up check began before this /readyz one; once /readyz has answered, wait
    // as long again (what the check took on this machine now) for the start-up one.
    let started = std::time::Instant::now();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (code, _) = rt.block_on(http_get(proxy.admin, "/readyz"));
    assert_eq!(code, 503, "redis is down");
    std::thread::sleep(started.elapsed());
    proxy.signal("TERM");
    let (status, err) = proxy.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{err}");
    let warning = err
        .lines()
        .find(|l| l.contains("backend not reachable at start"))
        .unwrap_or_else(|| panic!("no warning in:\n{err}"));
    assert!(
        warning.contains("namespace=cache") && warning.contains(&format!("127.0.0.1:{port}")),
        "{warning}"
    );
    assert!(!err.contains("s3cret"), "the password leaked:\n{err}");
}

/// Logs on a pipe carry no colour codes; `PRISM_LOG_FORMAT=json` makes every line a JSON
/// object; an unknown format is refused at start.
#[test]
fn logs_are_plain_off_a_terminal_and_json_on_request() {
    for (format, json) in [("text", false), ("json", true)] {
        let mut proxy = Proxy::start_with_env(CONFIG, &[], &[("RUST_LOG", "info"), ("PRISM_LOG_FORMAT", format)]);
        proxy.signal("TERM");
        let (status, err) = proxy.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "{err}");
        assert!(!err.contains('\u{1b}'), "colour codes on a pipe: {err:?}");
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(lines.iter().any(|l| l.contains("draining")), "{err}");
        for line in lines {
            let parsed = serde_json::from_str::<serde_json::Value>(line);
            assert_eq!(parsed.is_ok(), json, "{format}: {line}");
        }
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prism-proxy"))
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("PRISM_LOG_FORMAT", "xml")
        .output()
        .expect("run prism-proxy");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("PRISM_LOG_FORMAT=\"xml\": expected text or json"), "{err}");
}

#[test]
fn worker_threads_are_refused_with_the_current_thread_runtime() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prism-proxy"))
        .args(["--runtime", "current-thread", "--worker-threads", "2"])
        .output()
        .expect("run prism-proxy");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--worker-threads applies to --runtime multi-thread"),
        "{err}"
    );
}

#[tokio::test]
async fn drain_finishes_in_flight_requests_then_exits_zero() {
    let mut proxy = Proxy::start(CONFIG);
    let endpoint = proxy.endpoint();
    let c = proxy.client("default").await;
    // A long poll in flight when SIGTERM arrives must complete normally.
    let in_flight = {
        let c = c.clone();
        tokio::spawn(async move { c.receive("q".into(), 1, VIS, Duration::from_millis(1500)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.signal("TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (code, _) = http_get(proxy.admin, "/readyz").await;
    assert_eq!(code, 503, "not ready while draining");
    assert!(
        in_flight.await.unwrap().unwrap().is_empty(),
        "in-flight request finished normally"
    );
    let (status, stderr) = tokio::task::spawn_blocking(move || proxy.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let fresh = prism_proxy::client::PrismClient::connect(&endpoint, "default").await;
    assert!(fresh.is_err(), "no longer accepting");
}

#[tokio::test]
async fn drain_gives_up_after_timeout_and_exits_one() {
    let mut proxy = Proxy::start_with_args(CONFIG, &["--drain-timeout", "300ms"]);
    let c = proxy.client("default").await;
    let stuck = {
        let c = c.clone();
        tokio::spawn(async move { c.receive("q".into(), 1, VIS, Duration::from_secs(10)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = std::time::Instant::now();
    proxy.signal("INT");
    let (status, stderr) = tokio::task::spawn_blocking(move || proxy.wait_exit(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "exited at the drain timeout, not the poll's end"
    );
    assert!(stderr.contains("drain timed out"), "{stderr}");
    assert!(stuck.await.unwrap().is_err(), "the cut-off request failed");
}

#[tokio::test]
async fn subscriptions_end_on_drain() {
    let mut proxy = Proxy::start(CONFIG);
    let c = proxy.client("default").await;
    let mut sub = c.subscribe("t".into()).await.unwrap();
    proxy.signal("TERM");
    let end = tokio::time::timeout(Duration::from_secs(5), sub.messages.next())
        .await
        .expect("stream ends");
    assert!(end.is_none());
    let (status, stderr) = tokio::task::spawn_blocking(move || proxy.wait_exit(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[test]
fn port_in_use_is_named() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap().to_string();
    let (code, stderr) = run_binary(&["--listen", &addr, "--admin-listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains(&addr) && stderr.contains("gRPC listener"), "{stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
}

/// `--reuse-port` processes share one gRPC port and the kernel spreads connections over
/// them: with 32 connections, each process's own /metrics counts some of the Gets. A
/// process without the flag cannot take the port and is told why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_port_processes_share_the_grpc_port() {
    let first = Proxy::start_with_args(CONFIG, &["--reuse-port"]);
    let port = first.grpc.to_string();
    let second = Proxy::start_with_args(CONFIG, &["--reuse-port", "--listen", &port]);
    assert_eq!(second.grpc, first.grpc);
    for _ in 0..32 {
        let client = first.client("default").await;
        client.get(Bytes::from_static(b"k")).await.expect("get");
    }
    for proxy in [&first, &second] {
        let metrics = http_get(proxy.admin, "/metrics").await.1;
        let gets: u64 = metrics
            .lines()
            .filter(|l| l.starts_with("prism_requests_total{") && l.contains("operation=\"keyvalue.get\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert!(
            gets > 0 && gets < 32,
            "one process served {gets} of 32 Gets:\n{metrics}"
        );
    }

    let (code, stderr) = run_binary(&["--listen", &port, "--admin-listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("in use") && stderr.contains("reuse_port"), "{stderr}");
}

#[test]
fn config_errors_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "namespaces:\n  a:\n    backend: { type: postgresql }\n",
            ":3:",
            "unknown variant `postgresql`",
        ),
        (
            "namespaces:\n  a:\n    backend: { type: memstore }\n  a:\n    backend: { type: memstore }\n",
            ":",
            "duplicate namespace `a`",
        ),
        (
            "listen: 300.1.1.1:80\nnamespaces:\n  a:\n    backend: { type: memstore }\n",
            ":1:",
            "listen",
        ),
        (
            "namespaces:\n  a:\n    backend: { type: memstore }\n    limit: {}\n",
            ":4:",
            "unknown field `limit`",
        ),
        ("namespaces: {}\n", "namespaces", "at least one namespace"),
        (
            "namespaces:\n  Bad Name:\n    backend: { type: memstore }\n",
            "namespaces.Bad Name",
            "a-z",
        ),
        (
            "listen: 127.0.0.1:0\nadmin_listen: 127.0.0.1:0\ntls: { cert_file: /no/such.pem, key_file: /no/such.key }\nnamespaces:\n  a:\n    backend: { type: memstore }\n",
            "tls.cert_file",
            "/no/such.pem",
        ),
        (
            "namespaces:\n  a:\n    backend: { type: redis, url: 'redis://127.0.0.1:1', prefx: x }\n",
            ":3:",
            "unknown field `prefx`",
        ),
    ];
    for (i, (yaml, location, message)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let (code, stderr) = run_binary(&["--config", path.to_str().unwrap()]);
        assert_eq!(code, Some(1), "case {i}: {stderr}");
        assert!(
            stderr.contains(&format!("case{i}.yaml")),
            "case {i} names the file: {stderr}"
        );
        assert!(
            stderr.contains(location) && stderr.contains(message),
            "case {i}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "case {i}: {stderr}");
    }
    let (code, stderr) = run_binary(&["--config", "/no/such/file.yaml"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("/no/such/file.yaml"), "{stderr}");
}

#[tokio::test]
async fn deadline_passed_is_deadline_exceeded_and_retryable() {
    use prism_proto::queue::v1::{ReceiveRequest, queue_basic_client::QueueBasicClient};
    let proxy = Proxy::start(CONFIG);
    let c = proxy.client("default").await;
    let mut raw = QueueBasicClient::new(c.transport().clone());
    let mut request = tonic::Request::new(ReceiveRequest {
        queue: "empty".into(),
        max_messages: 1,
        visibility_timeout_ms: 1000,
        wait_ms: 5000,
    });
    request
        .metadata_mut()
        .insert("x-prism-namespace", "default".parse().unwrap());
    request.set_timeout(Duration::from_secs(1));
    let start = std::time::Instant::now();
    let status = raw.receive(request).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(is_retryable(&status));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "answered at the deadline, not after the wait"
    );
}

#[tokio::test]
async fn direct_connection_serves_calls_and_names_a_refused_one() {
    let proxy = Proxy::start(CONFIG);
    let client = prism_proxy::client::PrismClient::connect_direct(&proxy.endpoint(), "default")
        .await
        .expect("direct connection")
        .with_timeout(Duration::from_secs(5));
    client.set(Bytes::from("k"), Bytes::from("v")).await.expect("set");
    assert_eq!(client.get(Bytes::from("k")).await.expect("get"), Some(Bytes::from("v")));
    let unknown = prism_proxy::client::PrismClient::connect_direct(&proxy.endpoint(), "nope")
        .await
        .expect("direct connection");
    assert!(matches!(
        unknown.get(Bytes::from("k")).await,
        Err(BackendError::NotFound(_))
    ));

    // The task driving a direct connection ends with the last clone of its client: the
    // proxy sees the connection close.
    let open = || async { http_get(proxy.admin, "/metrics").await.1 };
    assert!(open().await.contains("prism_connections_open 2"), "{}", open().await);
    let clone = unknown.clone();
    drop(unknown);
    assert!(
        matches!(clone.describe().await, Err(BackendError::NotFound(_))),
        "a clone keeps the connection (and the namespace stays unknown)"
    );
    drop(clone);
    let mut closed = false;
    for _ in 0..100 {
        if open().await.contains("prism_connections_open 1") {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the dropped client's connection stays open: {}", open().await);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let refused =
        prism_proxy::client::PrismClient::connect_direct(&format!("http://127.0.0.1:{port}"), "default").await;
    assert!(
        matches!(&refused, Err(BackendError::Unavailable(m)) if m.contains("cannot connect")),
        "{:?}",
        refused.err()
    );
    let tls = prism_proxy::client::PrismClient::connect_direct("https://127.0.0.1:1", "default").await;
    assert!(matches!(tls, Err(BackendError::InvalidArgument { .. })));
}

/// `call_encoded` reaches a method by its path with a message the caller encoded, over
/// both transports; an unknown method is the server's UNIMPLEMENTED, and a reply over the
/// client's 4 MiB limit is refused as gRPC's clients refuse it (RESOURCE_EXHAUSTED), not
/// buffered.
#[rstest::rstest]
#[case::channel(false)]
#[case::direct(true)]
#[tokio::test]
async fn encoded_calls_reach_methods_by_path_and_bound_the_reply(#[case] direct: bool) {
    use prost::Message as _;
    let proxy = Proxy::start(CONFIG);
    let c = client_of(&proxy, direct).await;
    c.set(b("enc"), b("value")).await.unwrap();
    let get = MethodPath::parse("/prism.keyvalue.v1.KeyValueBasic/Get").unwrap();
    let request = GetRequest { key: b("enc") }.encode_to_vec();
    let reply = c
        .call_encoded(&get, &request, &Default::default())
        .await
        .expect("encoded get");
    let reply = prism_proto::keyvalue::v1::GetResponse::decode(reply).unwrap();
    assert!(reply.found);
    assert_eq!(reply.value, b("value"));

    let nope = MethodPath::parse("/prism.keyvalue.v1.KeyValueBasic/Nope").unwrap();
    let status = c.call_encoded(&nope, &request, &Default::default()).await;
    assert!(matches!(status, Err(BackendError::Unimplemented(_))), "{status:?}");

    // Five values of 1,000,000 bytes: a 5 MB BatchGet reply, under the server's own
    // 16 MiB response bound and over the client's 4 MiB.
    let big = Bytes::from(vec![7u8; 1_000_000]);
    let keys: Vec<Bytes> = (0..5).map(|i| b(&format!("big{i}"))).collect();
    for key in &keys {
        c.set(key.clone(), big.clone()).await.unwrap();
    }
    let refused = c.batch_get(keys.clone()).await;
    assert!(
        matches!(&refused, Err(BackendError::Overloaded(m)) if m.contains("larger than 4194304 bytes")),
        "{refused:?}"
    );
    assert_eq!(c.batch_get(keys[..4].to_vec()).await.unwrap().len(), 4, "4 MB fits");
    assert_eq!(
        c.get(b("enc")).await.unwrap(),
        Some(b("value")),
        "the connection still serves"
    );
}

/// The generic paths a caller without generated code uses, over both transports: the
/// server's reflection gives the descriptors of a service (and its imports), a server
/// stream opened by path carries the messages the server sends, the client's deadline
/// ends a stream the server keeps open, and metadata given per call replaces the
/// client's own (here the namespace, to one the proxy does not have).
#[rstest::rstest]
#[case::channel(false)]
#[case::direct(true)]
#[tokio::test]
async fn reflection_streams_and_call_metadata_work_by_path(#[case] direct: bool) {
    use prost::Message as _;
    let proxy = Proxy::start(CONFIG);
    let c = client_of(&proxy, direct).await;

    // Two services of one file and one of another: each file comes once.
    let files = c
        .reflect(&[
            "prism.pubsub.v1.PubSubBasic",
            "prism.keyvalue.v1.KeyValueBasic",
            "prism.keyvalue.v1.KeyValueScan",
        ])
        .await
        .expect("reflection");
    let mut names: Vec<&str> = files.iter().map(|f| f.name()).collect();
    assert!(names.contains(&"prism/pubsub/v1/pubsub.proto"), "{names:?}");
    names.sort();
    let all = names.len();
    names.dedup();
    assert_eq!(names.len(), all, "a file given twice: {names:?}");
    assert!(names.contains(&"prism/keyvalue/v1/keyvalue.proto"), "{names:?}");
    let unknown = c.reflect(&["no.such.Service"]).await;
    assert!(unknown.is_err(), "{unknown:?}");

    let subscribe = MethodPath::parse("/prism.pubsub.v1.PubSubBasic/Subscribe").unwrap();
    let request = prism_proto::pubsub::v1::SubscribeRequest {
        topic: "by-path".into(),
    }
    .encode_to_vec();
    let mut stream = c
        .server_stream_encoded(&subscribe, Bytes::from(request), &Default::default())
        .await
        .expect("stream opens");
    let decode = |m: Bytes| prism_proto::pubsub::v1::SubscribeResponse::decode(m).unwrap().event;
    use prism_proto::pubsub::v1::subscribe_response::Event;
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(decode(first), Some(Event::Subscribed(_))));
    c.publish("by-path".into(), b("hello")).await.unwrap();
    let message = stream.next().await.unwrap().unwrap();
    assert!(matches!(decode(message), Some(Event::Message(m)) if m.payload == b("hello")));
    drop(stream);

    // Watch sends the status, then waits for a change that never comes.
    let short = c.clone().with_timeout(Duration::from_millis(300));
    let watch = MethodPath::parse("/grpc.health.v1.Health/Watch").unwrap();
    let opened = std::time::Instant::now();
    let mut stream = short
        .server_stream_encoded(&watch, Bytes::new(), &Default::default())
        .await
        .expect("watch opens");
    assert!(stream.next().await.unwrap().is_ok(), "the current status");
    // Bounded so the sabotage (no local deadline) fails instead of hanging.
    let ended = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .expect("the client's deadline ends the stream");
    assert!(
        matches!(ended, Some(Err(BackendError::DeadlineExceeded(_)))),
        "{ended:?} after {:?}",
        opened.elapsed()
    );

    let get = MethodPath::parse("/prism.keyvalue.v1.KeyValueBasic/Get").unwrap();
    let request = GetRequest { key: b("k") }.encode_to_vec();
    assert!(c.call_encoded(&get, &request, &Default::default()).await.is_ok());
    let mut elsewhere = tonic::metadata::MetadataMap::new();
    elsewhere.insert(prism_proxy::NAMESPACE_HEADER, "no-such-namespace".parse().unwrap());
    let refused = c.call_encoded(&get, &request, &elsewhere).await;
    assert!(
        refused.is_err(),
        "the per-call namespace replaced the client's: {refused:?}"
    );
}
