//! Backend declarations known to the harness.

pub(crate) mod clickhouse;
mod grpc_endpoint;
mod memstore;
pub(crate) mod nats;
pub(crate) mod postgres;
pub(crate) mod redis;
mod server;
pub mod versions;

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

/// The built-in server backends at the other versions `registry/versions.yaml` lists,
/// each a row of the matrix (built in, so an installed `prism-conformance` has them).
pub fn other_versions() -> Result<Vec<Box<dyn BackendDecl>>, versions::VersionsError> {
    let rows = versions::parse(
        include_str!("../../registry/versions.yaml"),
        "acceptance/registry/versions.yaml",
        &[&REDIS, &POSTGRES, &NATS, &CLICKHOUSE],
    )?;
    Ok(rows
        .into_iter()
        .map(|row| Box::new(row) as Box<dyn BackendDecl>)
        .collect())
}

/// Every backend `cargo test -p acceptance` covers: the built-in ones, their other
/// versions and the endpoint `PRISM_ACCEPT_GRPC_ENDPOINT` names.
pub fn all() -> Result<Vec<Box<dyn BackendDecl>>, versions::VersionsError> {
    let mut backends = built_in();
    backends.extend(other_versions()?);
    if let Some(endpoint) = GrpcEndpoint::from_env() {
        backends.push(Box::new(endpoint));
    }
    Ok(backends)
}
