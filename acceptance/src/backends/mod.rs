//! Backend declarations known to the harness.

mod grpc_endpoint;
mod memstore;

pub use grpc_endpoint::GrpcEndpoint;
pub use memstore::Memstore;

use crate::BackendDecl;

/// Every backend the run covers. A plugin adds its declaration here.
pub fn all() -> Vec<Box<dyn BackendDecl>> {
    let mut backends: Vec<Box<dyn BackendDecl>> = vec![Box::new(Memstore)];
    if let Some(endpoint) = GrpcEndpoint::from_env() {
        backends.push(Box::new(endpoint));
    }
    backends
}
