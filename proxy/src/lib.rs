//! The reference Prism proxy as a library.
//!
//! - [`interfaces`]: one async trait per data interface. Backends implement them, the
//!   acceptance suites are written against them, and [`client::PrismClient`] implements
//!   them over gRPC so every suite also runs through the wire.
//! - [`backends`]: drivers; [`backends::memstore`] is the in-process store.
//! - [`server`]: gRPC services that route each request to its namespace's backend,
//!   enforce limits, and report metrics; [`admin`] is the HTTP side.
//! - [`config`]: the YAML configuration, validated at load time.

pub mod admin;
pub mod auth;
pub mod backends;
pub mod client;
pub mod config;
pub mod error;
pub mod interfaces;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod wire;

pub use error::{BackendError, BackendResult};
pub use interfaces::Interface;
