//! OTLP export of request spans (the `otlp` feature), and W3C trace context read from
//! request metadata while export is on.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::metadata::MetadataMap;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};

use super::{REQUEST_TARGET, TelemetryError};

/// A caller's trace context.
pub(crate) type ParentContext = opentelemetry::Context;

/// Whether traces are exported (then requests' trace context is read).
static TRACING: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

/// Where traces go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OtlpSettings {
    pub(crate) protocol: OtlpProtocol,
    /// `None`: from the `OTEL_EXPORTER_OTLP_*ENDPOINT` variables.
    pub(crate) endpoint: Option<String>,
}

impl OtlpSettings {
    /// From the standard variables; `None` when no endpoint is set (no export).
    pub(crate) fn from_env() -> Result<Option<OtlpSettings>, TelemetryError> {
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
    pub(crate) fn tracer_provider(&self) -> Result<SdkTracerProvider, TelemetryError> {
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
pub(crate) fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    TRACING.store(true, Ordering::Relaxed);
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("prism-proxy"))
        .with_filter(Targets::new().with_target(REQUEST_TARGET, LevelFilter::TRACE))
}

/// The caller's trace context from W3C `traceparent`/`tracestate` metadata, when traces
/// are exported.
pub(crate) fn parent_context(metadata: &MetadataMap) -> Option<ParentContext> {
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

/// Makes `parent` (if any) the parent of `span`.
pub(crate) fn set_parent(span: &tracing::Span, parent: Option<&ParentContext>) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if let Some(parent) = parent {
        let _ = span.set_parent(parent.clone());
    }
}
