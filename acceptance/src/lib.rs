//! The acceptance harness: conformance suites per data interface, written once against
//! the traits in `prism_proxy::interfaces`, run against every declared backend directly
//! and through the reference proxy over gRPC, ending in a compliance matrix.
//!
//! - [`declaration`]: what a backend claims (interfaces, capabilities) and how it is
//!   provisioned and connected; [`backends`] holds the declarations.
//! - [`registry`]: the per-backend YAML claim, checked against the code.
//! - [`suites`]: the cases, one module per interface.
//! - [`runner`]: turns backends x cases into libtest-mimic trials and runs them.
//! - [`report`]: `compliance.md` / `compliance.json`.
//! - [`nemesis`]: a TCP proxy that misbehaves on request, for the network fault suites.

pub mod backends;
pub mod capability;
pub mod declaration;
pub mod nemesis;
pub mod provision;
pub mod registry;
pub mod report;
pub mod runner;
pub mod suites;

pub use capability::Capability;
pub use declaration::{BackendDecl, Instance, Provider};
pub use suites::{Case, Subject};
