//! Live OTLP metrics and traces of the real `loadtest` binary, configured only by the
//! standard `OTEL_*` variables, received by an in-test collector (a stand-in: no OTLP
//! backend that stores metrics installs here; gRPC on one run, HTTP/protobuf on the other)
//! and by a real OTLP/HTTP receiver (`oteltap`). The exports arrive while the run goes,
//! carry the run id of `run.json` and each operation's scenario, and end at the counts
//! `run.json` reports; sampled requests' client spans are the parents of the embedded
//! proxy's server spans.

// Tests panic on failure by design.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{ExportMetricsServiceRequest, ExportMetricsServiceResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as Number;
use prost::Message;
use serde_json::Value;
use support::write;

/// Each export as received, with when.
type Received = Arc<Mutex<Vec<(Instant, ExportMetricsServiceRequest)>>>;

/// The spans received.
type Spans = Arc<Mutex<Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)>>>;

/// The in-test collector's gRPC side.
struct StandInCollector(Received);

/// The in-test collector's traces: each span with its resource's `service.name`.
struct StandInTraces(Spans);

#[tonic::async_trait]
impl TraceService for StandInTraces {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for rs in request.into_inner().resource_spans {
            let service = rs
                .resource
                .as_ref()
                .map(|r| attribute(&r.attributes, "service.name"))
                .unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push((service.clone(), span));
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for StandInCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push((Instant::now(), request.into_inner()));
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

/// Serves the in-test collector over `protocol` on its own runtime; its base endpoint.
fn stand_in_collector(protocol: &str, received: Received) -> String {
    stand_in_collector_with_traces(protocol, received, Spans::default())
}

/// The same, receiving spans too (gRPC only).
fn stand_in_collector_with_traces(protocol: &str, received: Received, spans: Spans) -> String {
    let grpc = protocol == "grpc";
    let addr = support::serve_on_own_thread(move |listener| async move {
        if grpc {
            tonic::transport::Server::builder()
                .add_service(MetricsServiceServer::new(StandInCollector(received)))
                .add_service(TraceServiceServer::new(StandInTraces(spans)))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
                .await
                .unwrap();
        } else {
            let app = axum::Router::new().route(
                "/v1/metrics",
                axum::routing::post(move |body: axum::body::Bytes| async move {
                    let request = ExportMetricsServiceRequest::decode(body).expect("protobuf export");
                    received.lock().unwrap().push((Instant::now(), request));
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                        ExportMetricsServiceResponse::default().encode_to_vec(),
                    )
                }),
            );
            axum::serve(listener, app).await.unwrap();
        }
    });
    format!("http://{addr}")
}

fn attribute(attributes: &[KeyValue], key: &str) -> String {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The last value of each counter and histogram, by (metric, scenario, operation), and the
/// run ids seen: cumulative temporality, so the last export holds the totals.
#[derive(Default, Debug)]
struct Last {
    counters: BTreeMap<(String, String, String), u64>,
    /// (count, sum) of `loadtest.latency`.
    histograms: BTreeMap<(String, String), (u64, f64)>,
    run_ids: Vec<String>,
    services: Vec<String>,
}

fn last_values(received: &Received) -> Last {
    let mut last = Last::default();
    for (_, export) in received.lock().unwrap().iter() {
        for rm in &export.resource_metrics {
            if let Some(resource) = &rm.resource {
                last.services.push(attribute(&resource.attributes, "service.name"));
            }
            for metric in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                match &metric.data {
                    Some(Data::Sum(sum)) => {
                        for p in &sum.data_points {
                            let key = (
                                metric.name.clone(),
                                attribute(&p.attributes, "loadtest.scenario"),
                                attribute(&p.attributes, "loadtest.operation"),
                            );
                            last.run_ids.push(attribute(&p.attributes, "loadtest.run_id"));
                            if let Some(Number::AsInt(v)) = p.value {
                                last.counters.insert(key, v as u64);
                            }
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        assert_eq!(metric.name, "loadtest.latency");
                        assert_eq!(metric.unit, "s");
                        for p in &h.data_points {
                            let key = (
                                attribute(&p.attributes, "loadtest.scenario"),
                                attribute(&p.attributes, "loadtest.operation"),
                            );
                            last.histograms.insert(key, (p.count, p.sum.unwrap_or(0.0)));
                        }
                    }
                    other => panic!("{}: unexpected data {other:?}", metric.name),
                }
            }
        }
    }
    last
}

const TWO: &str = "name: live\nseed: 5\nkeyspaces: {users: {prefix: 'u:', count: 200}}\nscenarios:\n  \
background:\n    load: {model: open, stages: [{duration: 5s, rate: 200}]}\n    operations:\n      \
- {op: keyvalue.get, weight: 3, keys: users}\n      - {op: keyvalue.set, weight: 1, keys: users, value_size: 32}\n  \
probe:\n    start: 1s\n    load: {model: closed, stages: [{duration: 3s, concurrency: 1}], think_time: 10ms}\n    \
operations:\n      - {op: keyvalue.get, keys: users}\n";

fn live_run(protocol: &str) {
    let received: Received = Arc::default();
    let endpoint = stand_in_collector(protocol, received.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "live.yaml", TWO);
    let began = Instant::now();
    let (code, _, stderr, run) = support::run_with_env(
        &path,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            // As `devstack env` sets it, for the proxy: loadtest stays `loadtest`.
            ("OTEL_SERVICE_NAME", "prism-proxy"),
        ],
    );
    let ended = Instant::now();
    assert_eq!(code, Some(0), "{protocol}: {stderr}");
    assert!(
        stderr.contains(&format!("over OTLP ({protocol}) to {endpoint}")),
        "{stderr}"
    );
    let run = run.unwrap();

    // Live: exports every second while the run went, not only at its end.
    let times: Vec<Instant> = received.lock().unwrap().iter().map(|(t, _)| *t).collect();
    let during = times.iter().filter(|t| **t + Duration::from_secs(2) < ended).count();
    assert!(
        during >= 2,
        "{protocol}: {} exports, {during} of them 2 s before the end of a {:?} run",
        times.len(),
        ended - began
    );

    let last = last_values(&received);
    let run_id = run["run_id"].as_str().unwrap();
    assert!(!run_id.is_empty());
    assert!(
        !last.run_ids.is_empty() && last.run_ids.iter().all(|id| id == run_id),
        "{:?}",
        last.run_ids
    );
    assert!(last.services.iter().all(|s| s == "loadtest"), "{:?}", last.services);
    for op in run["operations"].as_array().unwrap() {
        let name = op["operation"].as_str().unwrap();
        let (scenario, operation) = name.split_once('/').unwrap();
        let key = |metric: &str| (metric.to_string(), scenario.to_string(), operation.to_string());
        let (count, errors) = (op["count"].as_u64().unwrap(), op["errors"].as_u64().unwrap());
        assert!(count > 0, "{name}");
        assert_eq!(
            last.counters.get(&key("loadtest.requests")),
            Some(&count),
            "{protocol} {name}"
        );
        assert_eq!(
            last.counters.get(&key("loadtest.errors")),
            Some(&errors),
            "{protocol} {name}"
        );
        let (n, sum) = last.histograms[&(scenario.to_string(), operation.to_string())];
        assert_eq!(n, count - errors, "{protocol} {name}: the successful responses");
        // The same latencies, read at HdrHistogram's 3 significant digits.
        let mean_s = op["latency"]["mean_us"].as_f64().unwrap() / 1e6;
        assert!(
            (sum / n as f64 - mean_s).abs() <= mean_s * 0.01,
            "{protocol} {name}: mean {} s exported, {mean_s} s in run.json",
            sum / n as f64
        );
    }
}

#[test]
fn live_metrics_over_grpc_match_run_json() {
    live_run("grpc");
}

#[test]
fn live_metrics_over_http_protobuf_match_run_json() {
    live_run("http/protobuf");
}

/// The same export received by a real OTLP/HTTP receiver written apart from ours
/// (PyPI `oteltap`, which decodes with the reference protobuf definitions and prints
/// each metric as JSON; ci/test.sh installs it and sets `OTELTAP_PYTHON`): every
/// operation's last `loadtest.requests` is its `run.json` count.
#[test]
fn live_metrics_reach_a_real_otlp_receiver() {
    use std::io::BufRead;
    let python = std::env::var("OTELTAP_PYTHON").unwrap_or_else(|_| "python3".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut receiver = std::process::Command::new(&python)
        .args(["-u", "-m", "oteltap", "--port", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e}; `pip install oteltap` or run ci/test.sh, which installs it"));
    let mut lines = std::io::BufReader::new(receiver.stdout.take().unwrap()).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    if !first.starts_with("Listening") {
        let _ = receiver.kill();
        let stderr = std::io::read_to_string(receiver.stderr.take().unwrap()).unwrap_or_default();
        panic!("oteltap did not start ({first:?}; {stderr}); `pip install oteltap` or run ci/test.sh");
    }
    let reader = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<String>>());

    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "live.yaml", TWO);
    let endpoint = format!("http://127.0.0.1:{port}");
    let (code, _, stderr, run) = support::run_with_env(
        &path,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ],
    );
    // What it received is printed as it arrives; give the last export time to print.
    std::thread::sleep(Duration::from_secs(1));
    let _ = receiver.kill();
    let _ = receiver.wait();
    let printed = reader.join().unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    let run = run.unwrap();

    let mut last: BTreeMap<(String, String), u64> = BTreeMap::new();
    for line in printed.iter().filter(|l| l.starts_with('{')) {
        let metric: Value = serde_json::from_str(line).unwrap();
        if metric["name"] != "loadtest.requests" {
            continue;
        }
        for p in metric["sum"]["dataPoints"].as_array().unwrap() {
            let attr = |k: &str| {
                p["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["key"] == k)
                    .map(|a| a["value"]["stringValue"].as_str().unwrap().to_string())
                    .unwrap()
            };
            assert_eq!(attr("loadtest.run_id"), run["run_id"].as_str().unwrap());
            // OTLP JSON may write 64-bit integers as strings.
            let value = match &p["asInt"] {
                Value::String(s) => s.parse().unwrap(),
                v => v.as_u64().unwrap(),
            };
            last.insert((attr("loadtest.scenario"), attr("loadtest.operation")), value);
        }
    }
    assert!(!last.is_empty(), "oteltap printed no loadtest.requests: {printed:?}");
    for op in run["operations"].as_array().unwrap() {
        let (scenario, operation) = op["operation"].as_str().unwrap().split_once('/').unwrap();
        assert_eq!(
            last.get(&(scenario.to_string(), operation.to_string())),
            op["count"].as_u64().as_ref(),
            "{}",
            op["operation"]
        );
    }
}

/// `trace_sample: 30%`: about that share of the requests is sent in a client span of its
/// own, with `traceparent`; the embedded proxy (the real one, in the loadtest process,
/// over a loopback socket) makes exactly those requests' server spans, each the child of
/// its client span. The share is judged by the run's own request count (6 standard
/// deviations of a binomial draw).
#[test]
fn sampled_requests_carry_traceparent_and_the_proxy_spans_join_them() {
    let (received, spans) = (Received::default(), Spans::default());
    let endpoint = stand_in_collector_with_traces("grpc", received, spans.clone());
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "traced.yaml", &format!("trace_sample: 30%\n{TWO}"));
    let (code, _, stderr, run) = support::run_with_env(
        &path,
        dir.path(),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "prism-proxy"),
        ],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("traceparent on 30.000% of requests"), "{stderr}");
    let run = run.unwrap();
    let spans = spans.lock().unwrap();
    let client: Vec<_> = spans
        .iter()
        .filter(|(service, _)| service == "loadtest")
        .map(|(_, s)| s)
        .collect();
    let server: Vec<_> = spans
        .iter()
        .filter(|(service, _)| service == "prism-proxy")
        .map(|(_, s)| s)
        .collect();

    let requests = run["total"]["count"].as_f64().unwrap();
    let (expected, sd) = (requests * 0.3, (requests * 0.3 * 0.7).sqrt());
    assert!(
        (client.len() as f64 - expected).abs() <= 6.0 * sd,
        "{} client spans of {requests} requests",
        client.len()
    );
    let kind_client = opentelemetry_proto::tonic::trace::v1::span::SpanKind::Client as i32;
    for span in &client {
        assert!(span.name.starts_with("loadtest keyvalue."), "{}", span.name);
        assert_eq!(span.kind, kind_client);
        assert_eq!(
            attribute(&span.attributes, "loadtest.run_id"),
            run["run_id"].as_str().unwrap()
        );
        assert!(["background", "probe"].contains(&attribute(&span.attributes, "loadtest.scenario").as_str()));
        assert_eq!(attribute(&span.attributes, "loadtest.status"), "OK");
    }
    // Exactly the sampled requests have a server span, each under its client span.
    let parents: std::collections::BTreeSet<(Vec<u8>, Vec<u8>)> =
        client.iter().map(|s| (s.trace_id.clone(), s.span_id.clone())).collect();
    assert_eq!(server.len(), client.len(), "server spans");
    let kind_server = opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32;
    for span in &server {
        // The proxy names its request spans by operation.
        assert!(span.name.starts_with("keyvalue."), "{}", span.name);
        assert_eq!(span.kind, kind_server);
        assert_eq!(attribute(&span.attributes, "prism.namespace"), "default");
        assert!(
            parents.contains(&(span.trace_id.clone(), span.parent_span_id.clone())),
            "a server span whose parent is no client span"
        );
    }
}
