//! Namespaces and request routing: the `x-prism-namespace` metadata picks the namespace;
//! the namespace holds its backend, limits, in-flight permits and metrics.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tonic::metadata::MetadataMap;
use tonic::{Code, Status};

use super::Operation;
use crate::backends::Backend;
use crate::limits::Limits;
use crate::metrics::NamespaceMetrics;
use crate::status::{to_status, to_status_with_reason};
use crate::{BackendError, BackendResult, Interface};

/// The metadata key naming the namespace of a request.
pub const NAMESPACE_HEADER: &str = "x-prism-namespace";

pub struct Namespace {
    pub name: String,
    pub backend: Backend,
    pub limits: Limits,
    permits: Semaphore,
    metrics: NamespaceMetrics,
}

/// Decrements the in-flight gauge however the request ends (including cancellation).
struct InFlight<'a>(&'a prometheus::IntGauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Namespace {
    pub fn new(name: String, backend: Backend, limits: Limits, metrics: NamespaceMetrics) -> Namespace {
        Namespace {
            permits: Semaphore::new(limits.max_in_flight as usize),
            name,
            backend,
            limits,
            metrics,
        }
    }

    /// The handle for `interface`, or UNIMPLEMENTED when this namespace does not serve it.
    pub fn serve<T: ?Sized>(&self, handle: &Option<Arc<T>>, interface: Interface) -> Result<Arc<T>, Status> {
        handle.clone().ok_or_else(|| {
            let err = BackendError::Unimplemented(format!(
                "namespace {} does not serve {interface} (it serves: {})",
                self.name,
                self.backend
                    .interfaces()
                    .iter()
                    .map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            to_status(&err, Some(&self.name))
        })
    }

    /// Runs one request: in-flight limit, metrics, error mapping.
    pub async fn run<R>(
        &self,
        op: Operation,
        work: impl Future<Output = BackendResult<R>>,
    ) -> Result<tonic::Response<R>, Status> {
        let start = Instant::now();
        let Ok(_permit) = self.permits.try_acquire() else {
            let err = BackendError::Overloaded(format!(
                "namespace {} is serving its limit of {} requests (max_in_flight); retry shortly",
                self.name, self.limits.max_in_flight
            ));
            self.metrics.record(op, start.elapsed(), Code::ResourceExhausted);
            return Err(to_status(&err, Some(&self.name)));
        };
        self.metrics.in_flight.inc();
        let _in_flight = InFlight(&self.metrics.in_flight);
        let result = work.await;
        let code = result.as_ref().map_or_else(crate::status::code_of, |_| Code::Ok);
        self.metrics.record(op, start.elapsed(), code);
        result
            .map(tonic::Response::new)
            .map_err(|e| to_status(&e, Some(&self.name)))
    }
}

/// All namespaces, by name.
pub struct Router {
    namespaces: HashMap<String, Arc<Namespace>>,
}

impl Router {
    pub fn new(namespaces: impl IntoIterator<Item = Namespace>) -> Router {
        Router {
            namespaces: namespaces.into_iter().map(|n| (n.name.clone(), Arc::new(n))).collect(),
        }
    }

    pub fn namespaces(&self) -> impl Iterator<Item = &Arc<Namespace>> {
        self.namespaces.values()
    }

    /// The namespace a request names in its metadata.
    pub fn namespace(&self, metadata: &MetadataMap) -> Result<Arc<Namespace>, Status> {
        let Some(value) = metadata.get(NAMESPACE_HEADER) else {
            let err = BackendError::invalid(
                NAMESPACE_HEADER,
                format!("metadata {NAMESPACE_HEADER} is required to choose a namespace"),
            );
            return Err(to_status_with_reason(&err, "UNKNOWN_NAMESPACE", None));
        };
        let name = value.to_str().unwrap_or_default();
        self.namespaces.get(name).cloned().ok_or_else(|| {
            let mut known: Vec<&str> = self.namespaces.keys().map(String::as_str).collect();
            known.sort_unstable();
            let err = BackendError::NotFound(format!("no namespace {name:?} (configured: {})", known.join(", ")));
            to_status_with_reason(&err, "UNKNOWN_NAMESPACE", None)
        })
    }
}
