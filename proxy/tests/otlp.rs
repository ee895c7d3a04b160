//! OTLP trace export of the real `prism-proxy` binary, configured only by the standard
//! `OTEL_*` variables, received by an in-test collector (gRPC on one run, HTTP/protobuf on
//! the other): each request is a server span with its attributes, child of the caller's
//! W3C `traceparent`; spans still buffered are flushed when the proxy shuts down.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::Proxy;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use prism_proxy::client::PrismClient;
use prism_proxy::interfaces::KeyValueBasic;
use prost::Message;

type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

struct Collector(Received);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A gRPC collector; returns its endpoint.
async fn grpc_collector(received: Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(Collector(received)))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    format!("http://{addr}")
}

/// An HTTP/protobuf collector (`POST /v1/traces`); returns its base endpoint.
async fn http_collector(received: Received) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |body: axum::body::Bytes| async move {
            let request = ExportTraceServiceRequest::decode(body).expect("protobuf export");
            received.lock().unwrap().push(request);
            (
                [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                Vec::<u8>::new(),
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn spans(received: &Received) -> Vec<Span> {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.clone())
        .collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.clone()),
            Value::IntValue(i) => Some(i.to_string()),
            other => Some(format!("{other:?}")),
        })
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// Where the proxy learns the collector: the standard variables, or its config file's
/// `telemetry.otlp` (what `devstack render` writes).
#[derive(Clone, Copy)]
enum Via {
    Env,
    File,
}

async fn export_through(protocol: &str, endpoint: &str, received: Received, via: Via) {
    let service = [("OTEL_SERVICE_NAME", "prism-proxy-under-test")];
    let proxy = match via {
        Via::Env => Proxy::start_with_env(
            common::CONFIG,
            &[],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                service[0],
            ],
        ),
        Via::File => Proxy::start_with_env(
            &format!(
                "telemetry:\n  otlp: {{ endpoint: '{endpoint}', protocol: '{protocol}' }}\n{}",
                common::CONFIG
            ),
            &[],
            &service,
        ),
    };
    let client = PrismClient::connect(&proxy.endpoint(), "default")
        .await
        .unwrap()
        .with_metadata("traceparent", &format!("00-{TRACE_ID}-{PARENT_SPAN}-01"))
        .unwrap();
    client.set(Bytes::from("k"), Bytes::from("v")).await.unwrap();
    let untraced = PrismClient::connect(&proxy.endpoint(), "sessions").await.unwrap();
    assert!(untraced.get(Bytes::from("k")).await.unwrap().is_none());
    // Shut down: the proxy flushes its buffered spans before it exits.
    let mut proxy = proxy;
    proxy.signal("TERM");
    let (status, _) = proxy.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{protocol}: proxy exit {status:?}");

    let spans = spans(&received);
    let set = spans
        .iter()
        .find(|s| s.name == "keyvalue.set")
        .unwrap_or_else(|| panic!("{protocol}: no keyvalue.set span in {spans:?}"));
    assert_eq!(hex(&set.trace_id), TRACE_ID, "{protocol}: the caller's trace");
    assert_eq!(
        hex(&set.parent_span_id),
        PARENT_SPAN,
        "{protocol}: the caller's span is the parent"
    );
    assert_eq!(set.kind, 2, "{protocol}: a server span (SPAN_KIND_SERVER)");
    assert_eq!(attribute(set, "prism.namespace").as_deref(), Some("default"));
    assert_eq!(attribute(set, "prism.backend").as_deref(), Some("memstore"));
    assert_eq!(attribute(set, "rpc.grpc.status_code").as_deref(), Some("0"));
    let get = spans
        .iter()
        .find(|s| s.name == "keyvalue.get")
        .unwrap_or_else(|| panic!("{protocol}: no keyvalue.get span"));
    assert_ne!(
        hex(&get.trace_id),
        TRACE_ID,
        "{protocol}: a request without traceparent starts its own trace"
    );
    assert!(get.parent_span_id.is_empty(), "{protocol}: and has no parent");
    assert_eq!(attribute(get, "prism.namespace").as_deref(), Some("sessions"));
    let service = received.lock().unwrap()[0].resource_spans[0]
        .resource
        .as_ref()
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name").cloned())
        .and_then(|kv| match kv.value?.value? {
            Value::StringValue(s) => Some(s),
            _ => None,
        });
    assert_eq!(
        service.as_deref(),
        Some("prism-proxy-under-test"),
        "{protocol}: OTEL_SERVICE_NAME"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_grpc_collector() {
    let received = Received::default();
    let endpoint = grpc_collector(received.clone()).await;
    export_through("grpc", &endpoint, received, Via::Env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_the_config_file_names() {
    for protocol in ["grpc", "http/protobuf"] {
        let received = Received::default();
        let endpoint = match protocol {
            "grpc" => grpc_collector(received.clone()).await,
            _ => http_collector(received.clone()).await,
        };
        export_through(protocol, &endpoint, received, Via::File).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_http_protobuf_collector() {
    let received = Received::default();
    let endpoint = http_collector(received.clone()).await;
    export_through("http/protobuf", &endpoint, received, Via::Env).await;
}

#[test]
fn an_unknown_protocol_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(&config, common::CONFIG).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prism-proxy"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL") && stderr.contains("carrier-pigeon"),
        "{stderr}"
    );
}
