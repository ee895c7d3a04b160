//! `devstack`: Signoz (OpenTelemetry) and Dex (OIDC) for local development, started
//! through the Docker Engine API, with a developer identity provisioned and the proxy
//! wired to both.
//!
//! - [`stack`]: what runs — services, their configs (Dex, the collector, ClickHouse) and
//!   the equivalent compose file; image versions are pinned in [`versions`];
//! - [`engine`]: the Docker driver — dependency order, health waits, idempotent `up`,
//!   port conflicts, log tails on failure;
//! - [`dexcheck`]: Dex's own configuration rules plus ours, run on what is rendered;
//! - [`identity`] and [`oidc`]: the developer user, the password-grant login and the
//!   cached, verified token;
//! - [`settings`] and [`state`]: ports, network mode and the state folder.

pub mod dexcheck;
pub mod engine;
pub mod identity;
pub mod oidc;
pub mod settings;
pub mod stack;
pub mod state;
pub mod versions;

pub use settings::{NetworkMode, Settings};
