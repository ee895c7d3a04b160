//! The reference Prism proxy as a library.
//!
//! The public surface is the contract other crates build on:
//! - [`interfaces`]: one async trait per data interface, and [`Operation`]. Backends
//!   implement the traits, the acceptance suites are written against them, and
//!   [`client::PrismClient`] implements them over gRPC so every suite also runs through
//!   the wire.
//! - [`backends`]: the [`backends::Backend`] handle, the driver shape
//!   ([`backends::DriverInfo`], [`backends::DriverConfig`]) and the drivers compiled in
//!   (Cargo features `redis`, `postgres`, `nats`, `clickhouse`); [`backends::memstore`]
//!   is the in-process store.
//! - [`config`]: the YAML configuration, validated at load time; [`validation`]: the
//!   shape of every problem found in an input file.
//! - [`server`]: [`server::start`] serves a config (gRPC, health, reflection, admin HTTP)
//!   and [`server::RunningProxy::drain`] stops it.
//! - [`auth`]: OIDC bearer tokens (feature `oidc`); [`status`]: errors on the wire.
//!
//! Everything else (routing, limits, metrics, telemetry, TLS, wire conversions, driver
//! internals) is private to the crate. Helpers for other crates' tests are in
//! `test_util`, behind the `test-util` feature.

#![warn(missing_docs)]

pub mod auth;
pub mod backends;
pub mod client;
pub mod config;
pub mod interfaces;
pub mod server;
pub mod status;
pub mod telemetry;
pub mod validation;

mod admin;
mod budget;
mod clock;
mod error;
mod limits;
mod metrics;
#[cfg(feature = "test-util")]
pub mod test_util;
mod tls;
mod wire;

pub use error::{BackendError, BackendResult};
pub use interfaces::{Interface, Operation};
pub use limits::Limits;
pub use prism_proto::NAMESPACE_HEADER;
