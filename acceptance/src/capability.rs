//! Optional behaviours a backend may or may not have. A case that needs a capability the
//! subject lacks is reported as skipped, with the capability named.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// `publish` reports how many subscribers received the message.
    PubsubDeliveredCount,
    /// `receive` reports how many times a message has been delivered.
    QueueDeliveryCount,
    /// `ttl` reports the remaining time, not only whether a key expires.
    TtlRemaining,
    /// Requests over the documented size limits are refused with INVALID_ARGUMENT
    /// (the proxy's edge does this for every backend behind it).
    EnforcesLimits,
    /// timeseries_basic's `AppendColumns`, the compact form of an append (added to v1
    /// after `Append`: an endpoint written before it does not serve it).
    TimeseriesColumns,
}

impl Capability {
    pub const ALL: [Capability; 5] = [
        Capability::PubsubDeliveredCount,
        Capability::QueueDeliveryCount,
        Capability::TtlRemaining,
        Capability::EnforcesLimits,
        Capability::TimeseriesColumns,
    ];

    /// The capability named `name` (as in registry files), or what the names are.
    pub fn parse(name: &str) -> Result<Capability, String> {
        Capability::ALL.into_iter().find(|c| c.as_str() == name).ok_or_else(|| {
            let known: Vec<&str> = Capability::ALL.iter().map(|c| c.as_str()).collect();
            format!("unknown capability {name:?}; known: {}", known.join(", "))
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Capability::PubsubDeliveredCount => "pubsub_delivered_count",
            Capability::QueueDeliveryCount => "queue_delivery_count",
            Capability::TtlRemaining => "ttl_remaining",
            Capability::EnforcesLimits => "enforces_limits",
            Capability::TimeseriesColumns => "timeseries_columns",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
