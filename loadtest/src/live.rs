//! A run's metrics over OTLP while it goes, so it shows live in the stack's SigNoz (or any
//! OTLP backend): on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._METRICS_ENDPOINT`) is
//! set, read as the proxy reads it (`OTEL_EXPORTER_OTLP_PROTOCOL` `grpc` or
//! `http/protobuf`, headers), as service `loadtest` (`OTEL_SERVICE_NAME` is left to the
//! proxy: `devstack env` sets it to `prism-proxy`).
//!
//! Every second the stats close, each operation's share of it is handed to a thread that
//! records it into OpenTelemetry instruments, exported every second
//! (`OTEL_METRIC_EXPORT_INTERVAL` in ms overrides):
//! - `loadtest.requests` (counter): responses;
//! - `loadtest.errors` (counter): the failed ones;
//! - `loadtest.latency` (histogram, seconds): latency of the successful ones, corrected for
//!   coordinated omission as in the report;
//!
//! each with `loadtest.run_id` (also in `run.json`), `loadtest.scenario` and
//! `loadtest.operation`. The counters end at each operation's `count` and `errors` of
//! `run.json`: both count the same responses. Nothing is recorded on the request path.
//!
//! With `trace_sample: 1%` in the scenario, that share of requests is sent in a client
//! span of its own (`loadtest <operation>`, same attributes plus the status) with W3C
//! `traceparent` metadata, so the proxy's server span is its child; spans are exported
//! by the `OTEL_EXPORTER_OTLP_*TRACES*` settings.

use std::sync::mpsc;
use std::time::Duration;

use hdrhistogram::Histogram;
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use prism_proxy::telemetry::{OtlpProtocol, OtlpSettings, OtlpSignal, TelemetryError};

use crate::scenario::Scenario;

/// The settings of `signal` from the standard variables, always as service `loadtest`:
/// `OTEL_SERVICE_NAME` is for the proxy (`devstack env` sets it to `prism-proxy`).
fn settings(signal: OtlpSignal) -> Result<Option<OtlpSettings>, TelemetryError> {
    Ok(OtlpSettings::from_env_for(signal)?.map(|s| OtlpSettings {
        service_from_env: false,
        ..s
    }))
}

/// One closed second: each reported operation's responses, failures and latencies.
pub struct Second {
    pub ops: Vec<(u64, u64, Histogram<u64>)>,
}

/// Where [`crate::stats::Stats`] hands each closed second.
pub type SecondSink = mpsc::Sender<Second>;

/// Bucket bounds of `loadtest.latency`, in seconds: 100 us to a minute.
const BOUNDS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
    60.0,
];

/// The export while the run goes; [`Live::finish`] flushes the last second.
pub struct Live {
    provider: opentelemetry_sdk::metrics::SdkMeterProvider,
    worker: Option<std::thread::JoinHandle<()>>,
    sink: Option<SecondSink>,
    /// What the start line says about it.
    pub description: String,
}

impl Live {
    /// Starts the export when an endpoint is set; `None` when none is.
    pub fn start(run_id: &str, scenario: &Scenario, op_names: &[String]) -> Result<Option<Live>, TelemetryError> {
        let Some(settings) = settings(OtlpSignal::Metrics)? else {
            return Ok(None);
        };
        let interval = std::env::var("OTEL_METRIC_EXPORT_INTERVAL")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map_or(Duration::from_secs(1), Duration::from_millis);
        let provider = settings.meter_provider("loadtest", interval)?;
        let meter = provider.meter("loadtest");
        let requests = meter
            .u64_counter("loadtest.requests")
            .with_unit("{request}")
            .with_description("responses")
            .build();
        let errors = meter
            .u64_counter("loadtest.errors")
            .with_unit("{request}")
            .with_description("failed responses")
            .build();
        let latency = meter
            .f64_histogram("loadtest.latency")
            .with_unit("s")
            .with_description("latency of the successful responses, corrected for coordinated omission")
            .with_boundaries(BOUNDS.to_vec())
            .build();
        let layout = scenario.layout();
        let attributes: Vec<Option<Vec<KeyValue>>> = op_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let span = &layout.spans[layout.part_of(i)];
                let local = span.local(name);
                // Deliveries and stream messages are not requests.
                (!crate::scenario::is_synthetic(local)).then(|| {
                    vec![
                        KeyValue::new("loadtest.run_id", run_id.to_string()),
                        KeyValue::new(
                            "loadtest.scenario",
                            span.name.clone().unwrap_or_else(|| scenario.name.clone()),
                        ),
                        KeyValue::new("loadtest.operation", local.to_string()),
                    ]
                })
            })
            .collect();
        let (sink, seconds) = mpsc::channel::<Second>();
        let worker = std::thread::Builder::new()
            .name("loadtest-otlp".into())
            .spawn(move || {
                for second in seconds {
                    for ((count, failed, h), attributes) in second.ops.iter().zip(&attributes) {
                        let Some(attributes) = attributes else { continue };
                        if *count == 0 {
                            continue;
                        }
                        requests.add(*count, attributes);
                        errors.add(*failed, attributes);
                        for v in h.iter_recorded() {
                            let seconds = v.value_iterated_to() as f64 / 1e6;
                            for _ in 0..v.count_at_value() {
                                latency.record(seconds, attributes);
                            }
                        }
                    }
                }
            })
            .map_err(|e| TelemetryError::Exporter(format!("cannot start the export thread: {e}")))?;
        let protocol = match settings.protocol {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        };
        let endpoint = std::env::var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .unwrap_or_default();
        Ok(Some(Live {
            provider,
            worker: Some(worker),
            sink: Some(sink),
            description: format!(
                "live metrics every {} over OTLP ({protocol}) to {endpoint}, run id {run_id}",
                humantime::format_duration(interval)
            ),
        }))
    }

    /// Where the stats hand each closed second.
    pub fn sink(&self) -> Option<SecondSink> {
        self.sink.clone()
    }

    /// Records what is left and exports it; an error says why the collector did not get
    /// it (the run's own results are written either way).
    pub fn finish(mut self) -> Result<(), String> {
        drop(self.sink.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        self.provider.force_flush().map_err(|e| e.to_string())?;
        self.provider.shutdown().map_err(|e| e.to_string())
    }
}

/// Client spans with `traceparent` on a sampled share of requests (`trace_sample`).
pub struct Tracing {
    provider: opentelemetry_sdk::trace::SdkTracerProvider,
    tracer: opentelemetry_sdk::trace::SdkTracer,
    share: f64,
    run_id: String,
    /// Whether spans go anywhere (an endpoint is set).
    pub exported: bool,
}

/// The run's tracing as one scenario's engine uses it.
#[derive(Clone)]
pub struct PartTracing {
    pub tracing: std::sync::Arc<Tracing>,
    /// The scenario's name, for the spans' `loadtest.scenario`.
    pub scenario: String,
}

/// One sampled request's span and the `traceparent` that makes it the parent.
pub struct Traced {
    span: opentelemetry_sdk::trace::Span,
    pub traceparent: String,
}

impl Tracing {
    /// Samples `share` (0-1) of the requests. Without a traces endpoint the ids are still
    /// made and sent (the proxy's spans share a trace per request), but no client span
    /// is exported.
    pub fn start(run_id: &str, share: f64) -> Result<Tracing, TelemetryError> {
        let (provider, exported) = match settings(OtlpSignal::Traces)? {
            Some(settings) => (settings.tracer_provider("loadtest")?, true),
            None => (opentelemetry_sdk::trace::SdkTracerProvider::builder().build(), false),
        };
        Ok(Tracing {
            tracer: provider.tracer("loadtest"),
            provider,
            share,
            run_id: run_id.to_string(),
            exported,
        })
    }

    /// A span for this request of `operation` in `scenario`, if it is in the sample.
    pub fn sample(&self, scenario: &str, operation: &str) -> Option<Traced> {
        if rand::random::<f64>() >= self.share {
            return None;
        }
        let span = self
            .tracer
            .span_builder(format!("loadtest {operation}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("loadtest.run_id", self.run_id.clone()),
                KeyValue::new("loadtest.scenario", scenario.to_string()),
                KeyValue::new("loadtest.operation", operation.to_string()),
                KeyValue::new("rpc.system", "grpc"),
            ])
            .start(&self.tracer);
        let context = span.span_context();
        let traceparent = format!("00-{}-{}-01", context.trace_id(), context.span_id());
        Some(Traced { span, traceparent })
    }

    /// Exports the spans still buffered.
    pub fn finish(&self) -> Result<(), String> {
        self.provider.force_flush().map_err(|e| e.to_string())?;
        self.provider.shutdown().map_err(|e| e.to_string())
    }
}

impl Traced {
    /// Ends the span with the request's status (`OK` or the gRPC status name).
    pub fn end(mut self, code: &str) {
        self.span
            .set_attribute(KeyValue::new("loadtest.status", code.to_string()));
        if code != "OK" {
            self.span
                .set_status(opentelemetry::trace::Status::error(code.to_string()));
        }
        self.span.end();
    }
}
