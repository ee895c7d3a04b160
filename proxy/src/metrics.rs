//! Prometheus metrics: requests, errors and latency per namespace and operation.
//!
//! Series for the success path are resolved once per namespace at startup, so recording
//! a request costs no label lookup.

use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::Operation;

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    in_flight: IntGaugeVec,
    backend_up: IntGaugeVec,
    slow_consumers: IntCounterVec,
    /// gRPC connections open now.
    pub connections: prometheus::IntGauge,
    /// gRPC connections closed at accept because `transport.max_connections` were open.
    pub connections_refused: prometheus::IntCounter,
    /// gRPC connections closed after `transport.max_connection_idle` with no call open.
    pub connections_idle_closed: prometheus::IntCounter,
}

/// Pre-resolved series of one namespace.
pub struct NamespaceMetrics {
    namespace: String,
    ok: Vec<prometheus::IntCounter>,
    latency: Vec<prometheus::Histogram>,
    pub in_flight: prometheus::IntGauge,
    /// Subscriptions ended because their subscriber fell behind.
    pub slow_consumers: prometheus::IntCounter,
    requests: IntCounterVec,
}

const BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "prism_requests_total",
                "Requests handled, by namespace, operation and gRPC status code",
            ),
            &["namespace", "operation", "code"],
        )
        .expect("static metric definition");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "prism_request_duration_seconds",
                "Time to serve a request, by namespace and operation",
            )
            .buckets(BUCKETS.to_vec()),
            &["namespace", "operation"],
        )
        .expect("static metric definition");
        let in_flight = IntGaugeVec::new(
            Opts::new("prism_requests_in_flight", "Requests being served, by namespace"),
            &["namespace"],
        )
        .expect("static metric definition");
        let backend_up = IntGaugeVec::new(
            Opts::new(
                "prism_backend_up",
                "1 when the namespace's backend answered its last health check, 0 when not",
            ),
            &["namespace", "backend"],
        )
        .expect("static metric definition");
        let build_info = IntGaugeVec::new(
            Opts::new("prism_build_info", "Always 1; the labels say which build serves"),
            &["version"],
        )
        .expect("static metric definition");
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let slow_consumers = IntCounterVec::new(
            Opts::new(
                "prism_slow_consumers_total",
                "Subscriptions ended with RESOURCE_EXHAUSTED because the subscriber fell behind its buffer",
            ),
            &["namespace"],
        )
        .expect("static metric definition");
        let connections = prometheus::IntGauge::new("prism_connections_open", "gRPC connections open")
            .expect("static metric definition");
        let connections_refused = prometheus::IntCounter::new(
            "prism_connections_refused_total",
            "gRPC connections closed at accept because transport.max_connections were open",
        )
        .expect("static metric definition");
        let connections_idle_closed = prometheus::IntCounter::new(
            "prism_connections_idle_closed_total",
            "gRPC connections closed after transport.max_connection_idle with no call open",
        )
        .expect("static metric definition");
        for collector in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(in_flight.clone()),
            Box::new(backend_up.clone()),
            Box::new(build_info),
            Box::new(slow_consumers.clone()),
            Box::new(connections.clone()),
            Box::new(connections_refused.clone()),
            Box::new(connections_idle_closed.clone()),
        ] {
            registry.register(collector).expect("metrics registered once");
        }
        Metrics {
            registry,
            requests,
            latency,
            in_flight,
            backend_up,
            slow_consumers,
            connections,
            connections_refused,
            connections_idle_closed,
        }
    }

    /// Records whether `namespace`'s backend answered its health check.
    pub fn set_backend_up(&self, namespace: &str, backend: &str, up: bool) {
        self.backend_up
            .with_label_values(&[namespace, backend])
            .set(i64::from(up));
    }

    /// Records a request refused before a namespace was known, under `namespace=""`. Its
    /// series are made on first use (a refusal is never OK, so no OK series is made).
    pub fn record_refused(&self, op: Operation, elapsed: Duration, code: tonic::Code) {
        let op = op.as_str();
        self.latency.with_label_values(&["", op]).observe(elapsed.as_secs_f64());
        self.requests
            .with_label_values(&["", op, crate::status::code_name(code)])
            .inc();
    }

    pub fn namespace(&self, namespace: &str) -> NamespaceMetrics {
        NamespaceMetrics {
            namespace: namespace.to_string(),
            ok: Operation::ALL
                .iter()
                .map(|op| self.requests.with_label_values(&[namespace, op.as_str(), "OK"]))
                .collect(),
            latency: Operation::ALL
                .iter()
                .map(|op| self.latency.with_label_values(&[namespace, op.as_str()]))
                .collect(),
            in_flight: self.in_flight.with_label_values(&[namespace]),
            slow_consumers: self.slow_consumers.with_label_values(&[namespace]),
            requests: self.requests.clone(),
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl NamespaceMetrics {
    pub fn record(&self, op: Operation, elapsed: Duration, code: tonic::Code) {
        let i = op as usize;
        self.latency[i].observe(elapsed.as_secs_f64());
        if code == tonic::Code::Ok {
            self.ok[i].inc();
        } else {
            self.requests
                .with_label_values(&[self.namespace.as_str(), op.as_str(), crate::status::code_name(code)])
                .inc();
        }
    }
}
