//! Which gRPC service answers a request, found from its path: the proxy's own router in
//! place of tonic's (`transport` explains why tonic's server is not used). A path that is
//! a Prism operation is admitted first (`admission`); health, reflection and unknown
//! methods of known services go straight to their service; an unknown service is
//! UNIMPLEMENTED, as with tonic.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::body::Incoming;
use prism_proto::keyvalue::v1::{
    key_value_basic_server::KeyValueBasicServer, key_value_batch_server::KeyValueBatchServer,
    key_value_scan_server::KeyValueScanServer, key_value_ttl_server::KeyValueTtlServer,
};
use prism_proto::meta::v1::meta_server::MetaServer;
use prism_proto::pubsub::v1::pub_sub_basic_server::PubSubBasicServer;
use prism_proto::queue::v1::queue_basic_server::QueueBasicServer;
use prism_proto::timeseries::v1::time_series_basic_server::TimeSeriesBasicServer;
use tonic::body::Body;
use tower::Service as _;
use tower::util::BoxCloneSyncService;

use super::{keyvalue, meta, pubsub, queue, timeseries};
use crate::{Interface, Operation};

/// What a service answers: an HTTP response whose body tonic wrote.
pub(crate) type Answer = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

/// A service that takes requests as they come off the connection (health, reflection).
pub(crate) type PlainService = BoxCloneSyncService<http::Request<Incoming>, http::Response<Body>, Infallible>;

/// The Prism services, which requests reach after admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prism {
    KeyValueBasic,
    KeyValueTtl,
    KeyValueScan,
    KeyValueBatch,
    PubSub,
    Queue,
    TimeSeries,
    Meta,
}

impl Prism {
    fn of(op: Operation) -> Prism {
        match op.interface() {
            Some(Interface::KeyvalueBasic) => Prism::KeyValueBasic,
            Some(Interface::KeyvalueTtl) => Prism::KeyValueTtl,
            Some(Interface::KeyvalueScan) => Prism::KeyValueScan,
            Some(Interface::KeyvalueBatch) => Prism::KeyValueBatch,
            Some(Interface::PubsubBasic) => Prism::PubSub,
            Some(Interface::QueueBasic) => Prism::Queue,
            Some(Interface::TimeseriesBasic) => Prism::TimeSeries,
            None => Prism::Meta,
        }
    }
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// A Prism operation: admitted, then served by its service.
    Operation(Operation, Prism),
    /// Another method of a Prism service (UNIMPLEMENTED from the service itself).
    Prism(Prism),
    /// The `i`-th plain service.
    Plain(usize),
    /// No service of that name.
    Unknown,
}

/// Every service of the gRPC listener, and the table from paths to them.
pub(crate) struct Routes {
    operations: HashMap<Box<str>, Operation, foldhash::fast::RandomState>,
    prism: HashMap<Box<str>, Prism, foldhash::fast::RandomState>,
    plain: Vec<(&'static str, PlainService)>,
    kv_basic: KeyValueBasicServer<keyvalue::KeyValueService>,
    kv_ttl: KeyValueTtlServer<keyvalue::KeyValueService>,
    kv_scan: KeyValueScanServer<keyvalue::KeyValueService>,
    kv_batch: KeyValueBatchServer<keyvalue::KeyValueService>,
    pubsub: PubSubBasicServer<pubsub::PubSubService>,
    queue: QueueBasicServer<queue::QueueService>,
    timeseries: TimeSeriesBasicServer<timeseries::TimeSeriesService>,
    meta: MetaServer<meta::MetaService>,
}

/// The Prism services' handlers, and the largest request message any namespace allows
/// (the decoders' bound; admission applies each namespace's own first).
pub(crate) struct Handlers {
    pub(crate) keyvalue: Arc<keyvalue::KeyValueService>,
    pub(crate) pubsub: pubsub::PubSubService,
    pub(crate) queue: queue::QueueService,
    pub(crate) timeseries: timeseries::TimeSeriesService,
    pub(crate) max_message_bytes: usize,
}

impl Routes {
    /// The Prism services over `handlers`, and `plain` services (health, reflection) by
    /// their gRPC service names.
    pub(crate) fn new(handlers: Handlers, plain: Vec<(&'static str, PlainService)>) -> Routes {
        let max = handlers.max_message_bytes;
        let kv = handlers.keyvalue;
        Routes {
            operations: Operation::ALL
                .into_iter()
                .map(|op| (op.grpc_path().into_boxed_str(), op))
                .collect(),
            // Every Prism service has an operation, so the operations name them all.
            prism: Operation::ALL
                .into_iter()
                .map(|op| (service_of(&op.grpc_path()).into(), Prism::of(op)))
                .collect(),
            plain,
            kv_basic: KeyValueBasicServer::from_arc(kv.clone()).max_decoding_message_size(max),
            kv_ttl: KeyValueTtlServer::from_arc(kv.clone()).max_decoding_message_size(max),
            kv_scan: KeyValueScanServer::from_arc(kv.clone()).max_decoding_message_size(max),
            kv_batch: KeyValueBatchServer::from_arc(kv).max_decoding_message_size(max),
            pubsub: PubSubBasicServer::new(handlers.pubsub).max_decoding_message_size(max),
            queue: QueueBasicServer::new(handlers.queue).max_decoding_message_size(max),
            timeseries: TimeSeriesBasicServer::new(handlers.timeseries).max_decoding_message_size(max),
            meta: MetaServer::new(meta::MetaService).max_decoding_message_size(max),
        }
    }

    /// Where the request for `path` (`/package.Service/Method`) goes.
    pub(crate) fn route(&self, path: &str) -> Route {
        if let Some(&op) = self.operations.get(path) {
            return Route::Operation(op, Prism::of(op));
        }
        let service = service_of(path);
        if let Some(&prism) = self.prism.get(service) {
            return Route::Prism(prism);
        }
        match self.plain.iter().position(|(name, _)| *name == service) {
            Some(i) => Route::Plain(i),
            None => Route::Unknown,
        }
    }

    /// `request` served by the Prism service `service`.
    pub(crate) fn prism<B>(&self, service: Prism, request: http::Request<B>) -> Answer
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    {
        match service {
            Prism::KeyValueBasic => self.kv_basic.clone().call(request),
            Prism::KeyValueTtl => self.kv_ttl.clone().call(request),
            Prism::KeyValueScan => self.kv_scan.clone().call(request),
            Prism::KeyValueBatch => self.kv_batch.clone().call(request),
            Prism::PubSub => self.pubsub.clone().call(request),
            Prism::Queue => self.queue.clone().call(request),
            Prism::TimeSeries => self.timeseries.clone().call(request),
            Prism::Meta => self.meta.clone().call(request),
        }
    }

    /// `request`, not admitted, served by the service `route` names (or UNIMPLEMENTED).
    pub(crate) fn plain(&self, route: Route, request: http::Request<Incoming>) -> Answer {
        match route {
            Route::Prism(service) | Route::Operation(_, service) => self.prism(service, request),
            Route::Plain(i) => match self.plain.get(i) {
                Some((_, service)) => service.clone().call(request),
                None => unimplemented_service(request.uri().path()),
            },
            Route::Unknown => unimplemented_service(request.uri().path()),
        }
    }
}

/// The service part of a gRPC path (`/package.Service/Method`); empty for another path.
fn service_of(path: &str) -> &str {
    path.strip_prefix('/')
        .and_then(|p| p.rsplit_once('/'))
        .map_or("", |(service, _)| service)
}

fn unimplemented_service(path: &str) -> Answer {
    let status = tonic::Status::unimplemented(format!("no service serves {path}"));
    Box::pin(std::future::ready(Ok(status.into_http())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lead_to_operations_services_or_nowhere() {
        let routes = test_services();
        assert_eq!(
            routes.route("/prism.keyvalue.v1.KeyValueBasic/Get"),
            Route::Operation(Operation::KvGet, Prism::KeyValueBasic)
        );
        assert_eq!(
            routes.route("/prism.timeseries.v1.TimeSeriesBasic/Append"),
            Route::Operation(Operation::TsAppend, Prism::TimeSeries)
        );
        assert_eq!(
            routes.route("/prism.keyvalue.v1.KeyValueBasic/Nope"),
            Route::Prism(Prism::KeyValueBasic)
        );
        assert_eq!(
            routes.route("/grpc.health.v1.Health/Check"),
            Route::Unknown,
            "no plain services here"
        );
        assert_eq!(routes.route("/no.such.Service/Get"), Route::Unknown);
        assert_eq!(routes.route("nonsense"), Route::Unknown);
        for op in Operation::ALL {
            assert_eq!(
                routes.route(&op.grpc_path()),
                Route::Operation(op, Prism::of(op)),
                "{op:?}"
            );
        }
    }

    fn test_services() -> Routes {
        let router = Arc::new(crate::server::namespace::Router::new(
            Vec::new(),
            crate::auth::Auth::None,
            crate::metrics::Metrics::new(),
            &crate::config::TransportConfig::default(),
        ));
        Routes::new(
            Handlers {
                keyvalue: Arc::new(keyvalue::KeyValueService::new(router.clone())),
                pubsub: pubsub::PubSubService::new(router.clone(), tokio_util::sync::CancellationToken::new()),
                queue: queue::QueueService::new(router.clone()),
                timeseries: timeseries::TimeSeriesService::new(router),
                max_message_bytes: 1024,
            },
            Vec::new(),
        )
    }
}
