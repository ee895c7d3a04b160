//! OTLP export of request spans (the `otlp` feature), and W3C trace context read from
//! request metadata while export is on.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};

use super::{REQUEST_TARGET, TelemetryError};

/// A caller's trace context.
pub(crate) type ParentContext = opentelemetry::Context;

/// Whether traces are exported (then requests' trace context is read).
static TRACING: AtomicBool = AtomicBool::new(false);

/// How telemetry is sent to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (port 4317).
    Grpc,
    /// OTLP over HTTP with protobuf bodies (port 4318), the specification's default.
    HttpProtobuf,
}

/// Which signal the settings are for: each may have its own `*_ENDPOINT` and
/// `*_PROTOCOL` variables over the general ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpSignal {
    /// Spans (`OTEL_EXPORTER_OTLP_TRACES_*`).
    Traces,
    /// Metrics (`OTEL_EXPORTER_OTLP_METRICS_*`).
    Metrics,
}

impl OtlpSignal {
    fn suffix(self) -> &'static str {
        match self {
            OtlpSignal::Traces => "TRACES",
            OtlpSignal::Metrics => "METRICS",
        }
    }
}

/// The exporter of one signal over `settings`' protocol and endpoint: a macro, as each
/// signal's builder is a type of its own.
macro_rules! exporter {
    ($settings:expr, $exporter:ty) => {{
        let settings = $settings;
        match settings.protocol {
            OtlpProtocol::Grpc => {
                let mut b = <$exporter>::builder().with_tonic();
                if let Some(e) = &settings.endpoint {
                    b = b.with_endpoint(e);
                }
                b.build()
            }
            OtlpProtocol::HttpProtobuf => {
                let mut b = <$exporter>::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
                if let Some(e) = &settings.endpoint {
                    b = b.with_endpoint(e);
                }
                b.build()
            }
        }
        .map_err(|e| TelemetryError::Exporter(e.to_string()))
    }};
}

/// Where telemetry goes, from the standard `OTEL_EXPORTER_OTLP_*` variables (the exporter
/// reads the endpoint, headers and timeout itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// gRPC or HTTP/protobuf.
    pub protocol: OtlpProtocol,
    /// `None`: from the `OTEL_EXPORTER_OTLP_*ENDPOINT` variables.
    pub endpoint: Option<String>,
    /// Whether `OTEL_SERVICE_NAME` replaces the service name given to the providers
    /// (off for a tool run in a shell set up for the proxy, e.g. by `devstack env`).
    pub service_from_env: bool,
}

impl OtlpSettings {
    /// For traces, from the standard variables; `None` when no endpoint is set.
    pub(crate) fn from_env() -> Result<Option<OtlpSettings>, TelemetryError> {
        OtlpSettings::from_env_for(OtlpSignal::Traces)
    }

    /// For `signal`, from the standard variables; `None` when no endpoint is set (no
    /// export).
    pub fn from_env_for(signal: OtlpSignal) -> Result<Option<OtlpSettings>, TelemetryError> {
        let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty());
        let own = |k: &str| format!("OTEL_EXPORTER_OTLP_{}_{k}", signal.suffix());
        if !set("OTEL_EXPORTER_OTLP_ENDPOINT") && !set(&own("ENDPOINT")) {
            return Ok(None);
        }
        let protocol = std::env::var(own("PROTOCOL"))
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
            service_from_env: true,
        }))
    }

    /// For traces, from the config's `telemetry.otlp` (validated when it was loaded). The
    /// HTTP exporter takes a signal's full URL, so `/v1/traces` is added to the base URL
    /// as the standard variable's reader does.
    pub(crate) fn from_config(otlp: &crate::config::OtlpConfig) -> OtlpSettings {
        let (protocol, endpoint) = match otlp.protocol.as_str() {
            "grpc" => (OtlpProtocol::Grpc, otlp.endpoint.clone()),
            _ => (
                OtlpProtocol::HttpProtobuf,
                format!("{}/v1/traces", otlp.endpoint.trim_end_matches('/')),
            ),
        };
        OtlpSettings {
            protocol,
            endpoint: Some(endpoint),
            service_from_env: true,
        }
    }

    /// The resource: `OTEL_SERVICE_NAME` (when read), else `service`.
    fn resource(&self, service: &str) -> opentelemetry_sdk::Resource {
        let service = match std::env::var("OTEL_SERVICE_NAME") {
            Ok(name) if self.service_from_env => name,
            _ => service.to_string(),
        };
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service)
            .build()
    }

    /// A tracer provider exporting in batches to the collector, as `service` unless
    /// `OTEL_SERVICE_NAME` names another (and is read); every span sampled.
    pub fn tracer_provider(&self, service: &str) -> Result<SdkTracerProvider, TelemetryError> {
        self.tracer_provider_sampled(service, opentelemetry_sdk::trace::Sampler::AlwaysOn)
    }

    /// As [`OtlpSettings::tracer_provider`], with spans sampled by `sampler`.
    pub fn tracer_provider_sampled(
        &self,
        service: &str,
        sampler: opentelemetry_sdk::trace::Sampler,
    ) -> Result<SdkTracerProvider, TelemetryError> {
        let exporter = exporter!(self, opentelemetry_otlp::SpanExporter)?;
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(self.resource(service))
            .build())
    }

    /// A meter provider exporting every `interval` to the collector, as `service`
    /// unless `OTEL_SERVICE_NAME` names another (temporality: the exporter's default,
    /// cumulative, or `OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`).
    pub fn meter_provider(
        &self,
        service: &str,
        interval: std::time::Duration,
    ) -> Result<opentelemetry_sdk::metrics::SdkMeterProvider, TelemetryError> {
        let exporter = exporter!(self, opentelemetry_otlp::MetricExporter)?;
        let reader = opentelemetry_sdk::metrics::PeriodicReader::builder(exporter)
            .with_interval(interval)
            .build();
        Ok(opentelemetry_sdk::metrics::SdkMeterProvider::builder()
            .with_reader(reader)
            .with_resource(self.resource(service))
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
pub(crate) fn parent_context(headers: &http::HeaderMap) -> Option<ParentContext> {
    if !TRACING.load(Ordering::Relaxed) || !headers.contains_key("traceparent") {
        return None;
    }
    struct Headers<'a>(&'a http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }
    Some(opentelemetry_sdk::propagation::TraceContextPropagator::new().extract(&Headers(headers)))
}

/// Makes `parent` (if any) the parent of `span`.
pub(crate) fn set_parent(span: &tracing::Span, parent: Option<&ParentContext>) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    if let Some(parent) = parent {
        let _ = span.set_parent(parent.clone());
    }
}
