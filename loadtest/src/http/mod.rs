//! `http.get` / `http.post` operations, run on goose beside the gRPC engine.
//!
//! The goose attack is built at run time from the scenario: one scenario with one
//! transaction; each goose user owns a [`Workload`] (seeded like the engine's workers), so
//! operation, key and size choices follow the scenario's weights and seed. Each request
//! is timed in microseconds around goose's own call and recorded in the same [`Stats`] as
//! the gRPC operations, under its operation's name: one report for both.
//!
//! Load: in a closed model the HTTP share of each stage's clients become goose users
//! (goose's test plan follows the stages). In an open model goose is throttled to the
//! HTTP share of the highest stage rate, with up to `max_in_flight` users. Goose does
//! not ramp a throttle, so a ramp applies to the gRPC operations only. Latency of HTTP
//! operations is the service time (goose schedules them).
//!
//! goose is behind the `http` feature (`cargo install --path loadtest --features http`);
//! without it, a scenario with `http.*` operations is refused at validation.

#[cfg(feature = "http")]
mod goose;

#[cfg(feature = "http")]
pub use goose::run;

use crate::scenario::{Load, Scenario};
use crate::workload::is_http;

/// Whether this build runs `http.*` operations.
pub const ENABLED: bool = cfg!(feature = "http");

/// The scenario as the gRPC engine runs it and as goose runs it: each with the other's
/// operations at weight 0 and the load scaled to its share of the weights. `None` for a
/// side with no operation.
pub fn split(scenario: &Scenario) -> (Option<Scenario>, Option<Scenario>) {
    let total: u32 = scenario.operations.iter().map(|o| o.weight).sum();
    let part = |http: bool| {
        let weight: u32 = scenario
            .operations
            .iter()
            .filter(|o| is_http(&o.op) == http)
            .map(|o| o.weight)
            .sum();
        if weight == 0 {
            return None;
        }
        let mut s = scenario.clone();
        for o in &mut s.operations {
            if is_http(&o.op) != http {
                o.weight = 0;
            }
        }
        let share = f64::from(weight) / f64::from(total.max(1));
        match &mut s.load {
            Load::Open { stages, .. } => {
                for stage in stages {
                    stage.rate *= share;
                    stage.ramp_to = stage.ramp_to.map(|r| r * share);
                }
            }
            Load::Closed { stages, .. } => {
                for stage in stages {
                    stage.concurrency = ((stage.concurrency as f64 * share).round() as usize).max(1);
                }
            }
        }
        Some(s)
    };
    (part(false), part(true))
}
