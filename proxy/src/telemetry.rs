//! Logs and traces. Logs go to stderr (`RUST_LOG`, default `info`). Traces go to an OTLP
//! collector when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set:
//! - `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` (port 4317) or `http/protobuf` (port 4318, the
//!   default);
//! - the other standard `OTEL_*` variables (headers, timeout, `OTEL_SERVICE_NAME`) are read
//!   by the exporter and the SDK.
//!
//! Each request is a server span (`prism.request`, attributes `rpc.method`,
//! `prism.namespace`, `prism.backend`, `rpc.grpc.status_code`), child of the caller's
//! span when the request carries W3C `traceparent` metadata. With no collector the
//! span is disabled at its call site and costs nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::metadata::MetadataMap;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The target of request spans: the only spans exported.
pub const REQUEST_TARGET: &str = "prism_proxy::request";

/// Whether traces are exported (then requests' trace context is read).
static TRACING: AtomicBool = AtomicBool::new(false);

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL={0:?}: expected grpc or http/protobuf")]
    Protocol(String),
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

/// Where traces go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    pub protocol: OtlpProtocol,
    /// `None`: from the `OTEL_EXPORTER_OTLP_*ENDPOINT` variables.
    pub endpoint: Option<String>,
}

impl OtlpSettings {
    /// From the standard variables; `None` when no endpoint is set (no export).
    pub fn from_env() -> Result<Option<OtlpSettings>, TelemetryError> {
        let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
        if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            return Ok(None);
        }
        let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|_| "http/protobuf".into());
        let protocol = match protocol.as_str() {
            "grpc" => OtlpProtocol::Grpc,
            "http/protobuf" => OtlpProtocol::HttpProtobuf,
            other => return Err(TelemetryError::Protocol(other.to_string())),
        };
        Ok(Some(OtlpSettings {
            protocol,
            endpoint: None,
        }))
    }

    /// A tracer provider exporting in batches to the collector.
    pub fn tracer_provider(&self) -> Result<SdkTracerProvider, TelemetryError> {
        let exporter = match self.protocol {
            OtlpProtocol::Grpc => {
                let mut b = opentelemetry_otlp::SpanExporter::builder().with_tonic();
                if let Some(e) = &self.endpoint {
                    b = b.with_endpoint(e);
                }
                b.build()
            }
            OtlpProtocol::HttpProtobuf => {
                let mut b = opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
                if let Some(e) = &self.endpoint {
                    b = b.with_endpoint(e);
                }
                b.build()
            }
        }
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "prism-proxy".into());
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name(service)
                    .build(),
            )
            .build())
    }
}

/// The layer exporting request spans through `provider`; turns on trace-context reading.
pub fn otlp_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    TRACING.store(true, Ordering::Relaxed);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("prism-proxy"))
        .with_filter(Targets::new().with_target(REQUEST_TARGET, LevelFilter::TRACE))
}

/// What `init` set up; `shutdown` flushes the spans still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the process's subscriber: stderr logs, plus OTLP traces when configured.
pub fn init() -> Result<Telemetry, TelemetryError> {
    let settings = OtlpSettings::from_env()?;
    let provider = settings.as_ref().map(OtlpSettings::tracer_provider).transpose()?;
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()));
    let registry = tracing_subscriber::registry().with(logs);
    match &provider {
        Some(p) => registry.with(otlp_layer(p)).init(),
        None => registry.init(),
    }
    Ok(Telemetry { provider })
}

/// The caller's trace context from W3C `traceparent`/`tracestate` metadata, when traces
/// are exported.
pub fn parent_context(metadata: &MetadataMap) -> Option<opentelemetry::Context> {
    if !TRACING.load(Ordering::Relaxed) || metadata.get("traceparent").is_none() {
        return None;
    }
    struct Metadata<'a>(&'a MetadataMap);
    impl Extractor for Metadata<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0
                .keys()
                .filter_map(|k| match k {
                    tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                    tonic::metadata::KeyRef::Binary(_) => None,
                })
                .collect()
        }
    }
    Some(opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&Metadata(metadata)))
}
