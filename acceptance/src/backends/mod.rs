//! Backend declarations known to the harness.

pub(crate) mod clickhouse;
mod grpc_endpoint;
mod memstore;
pub(crate) mod nats;
pub(crate) mod postgres;
pub(crate) mod redis;
mod server;

pub use clickhouse::CLICKHOUSE;
pub use grpc_endpoint::GrpcEndpoint;
pub use memstore::Memstore;
pub use nats::NATS;
pub use postgres::POSTGRES;
pub use redis::REDIS;
pub use server::ServerBackend;

use crate::BackendDecl;

/// Every backend the run covers. A plugin adds its declaration here.
pub fn all() -> Vec<Box<dyn BackendDecl>> {
    let mut backends: Vec<Box<dyn BackendDecl>> = vec![
        Box::new(Memstore),
        Box::new(REDIS),
        Box::new(POSTGRES),
        Box::new(NATS),
        Box::new(CLICKHOUSE),
    ];
    if let Some(endpoint) = GrpcEndpoint::from_env() {
        backends.push(Box::new(endpoint));
    }
    backends
}
