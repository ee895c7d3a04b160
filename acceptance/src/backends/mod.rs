//! Backend declarations known to the harness.

pub(crate) mod clickhouse;
mod grpc_endpoint;
mod memstore;
pub(crate) mod nats;
pub(crate) mod postgres;
pub(crate) mod redis;
mod server;

pub use clickhouse::CLICKHOUSE;
pub use grpc_endpoint::{EndpointOptions, GrpcEndpoint};
pub use memstore::Memstore;
pub use nats::NATS;
pub use postgres::POSTGRES;
pub use redis::REDIS;
pub use server::ServerBackend;

use crate::BackendDecl;

/// The backends built into the harness. A plugin with a driver in this repository adds
/// its declaration here.
pub fn built_in() -> Vec<Box<dyn BackendDecl>> {
    vec![
        Box::new(Memstore),
        Box::new(REDIS),
        Box::new(POSTGRES),
        Box::new(NATS),
        Box::new(CLICKHOUSE),
    ]
}

/// Every backend `cargo test -p acceptance` covers: the built-in ones and the endpoint
/// `PRISM_ACCEPT_GRPC_ENDPOINT` names.
pub fn all() -> Vec<Box<dyn BackendDecl>> {
    let mut backends = built_in();
    if let Some(endpoint) = GrpcEndpoint::from_env() {
        backends.push(Box::new(endpoint));
    }
    backends
}
