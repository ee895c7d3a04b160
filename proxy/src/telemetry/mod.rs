//! Logs and traces. Logs go to stderr (`RUST_LOG`, default `info`): lines with colour on
//! a terminal, without elsewhere, or JSON objects one per line with
//! `PRISM_LOG_FORMAT=json`. With the `otlp`
//! feature, traces go to an OTLP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set:
//! - `OTEL_EXPORTER_OTLP_PROTOCOL=grpc` (port 4317) or `http/protobuf` (port 4318, the
//!   default);
//! - the other standard `OTEL_*` variables (headers, timeout, `OTEL_SERVICE_NAME`) are read
//!   by the exporter and the SDK.
//!
//! Each request is a server span (`prism.request`, attributes `rpc.method`,
//! `prism.namespace`, `prism.backend`, `rpc.grpc.status_code`), child of the caller's
//! span when the request carries W3C `traceparent` metadata. With no collector the
//! span is disabled at its call site and costs nothing.

#[cfg(feature = "otlp")]
mod otlp;

use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[cfg(feature = "otlp")]
pub use otlp::{OtlpProtocol, OtlpSettings, OtlpSignal};
#[cfg(feature = "otlp")]
pub(crate) use otlp::{ParentContext, parent_context, set_parent};

/// The target of request spans: the only spans exported.
pub(crate) const REQUEST_TARGET: &str = "prism_proxy::request";

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `OTEL_EXPORTER_OTLP_PROTOCOL` names no protocol the exporter speaks.
    #[error("OTEL_EXPORTER_OTLP_PROTOCOL={0:?}: expected grpc or http/protobuf")]
    Protocol(String),
    /// The exporter could not be built.
    #[error("OTLP exporter: {0}")]
    Exporter(String),
    /// `PRISM_LOG_FORMAT` names no log format.
    #[error("PRISM_LOG_FORMAT={0:?}: expected text or json")]
    LogFormat(String),
}

/// What [`init`] set up; [`Telemetry::shutdown`] flushes the spans still buffered.
pub struct Telemetry {
    #[cfg(feature = "otlp")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Telemetry {
    /// Flushes buffered spans (with the `otlp` feature) before the process ends.
    pub fn shutdown(self) {
        #[cfg(feature = "otlp")]
        if let Some(provider) = self.provider {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the process's subscriber: stderr logs, plus OTLP traces when the
/// `OTEL_EXPORTER_OTLP_*` variables or else the config's `telemetry` name a collector.
pub fn init(config: &crate::config::TelemetryConfig) -> Result<Telemetry, TelemetryError> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = match std::env::var("PRISM_LOG_FORMAT").as_deref() {
        Err(_) | Ok("" | "text") => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter(filter)
            .boxed(),
        Ok("json") => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        Ok(other) => return Err(TelemetryError::LogFormat(other.to_string())),
    };
    let registry = tracing_subscriber::registry().with(logs);
    #[cfg(feature = "otlp")]
    {
        let settings = match otlp::OtlpSettings::from_env()? {
            Some(from_env) => Some(from_env),
            None => config.otlp.as_ref().map(otlp::OtlpSettings::from_config),
        };
        let provider = settings
            .as_ref()
            .map(|s| s.tracer_provider("prism-proxy"))
            .transpose()?;
        match &provider {
            Some(p) => registry.with(otlp::layer(p)).init(),
            None => registry.init(),
        }
        Ok(Telemetry { provider })
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = config;
        registry.init();
        Ok(Telemetry {})
    }
}

/// For a process that embeds the proxy (loadtest's embedded target): the proxy's request
/// spans exported over OTLP when a traces endpoint is set, and only for requests whose
/// caller sent a sampled `traceparent` (so load without trace context costs no spans);
/// no logs. `None` when no endpoint is set. Fails if the process has a subscriber already.
#[cfg(feature = "otlp")]
pub fn init_embedded_traces() -> Result<Option<Telemetry>, TelemetryError> {
    let Some(settings) = otlp::OtlpSettings::from_env()? else {
        return Ok(None);
    };
    let sampler =
        opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(opentelemetry_sdk::trace::Sampler::AlwaysOff));
    let provider = settings.tracer_provider_sampled("prism-proxy", sampler)?;
    tracing_subscriber::registry()
        .with(otlp::layer(&provider))
        .try_init()
        .map_err(|e| TelemetryError::Exporter(format!("cannot install the trace export: {e}")))?;
    Ok(Some(Telemetry {
        provider: Some(provider),
    }))
}

/// Without the `otlp` feature no trace context is read: requests have no parent.
#[cfg(not(feature = "otlp"))]
#[derive(Clone)]
pub(crate) enum ParentContext {}

#[cfg(not(feature = "otlp"))]
pub(crate) fn parent_context(_: &http::HeaderMap) -> Option<ParentContext> {
    None
}

#[cfg(not(feature = "otlp"))]
pub(crate) fn set_parent(_: &tracing::Span, _: Option<&ParentContext>) {}
