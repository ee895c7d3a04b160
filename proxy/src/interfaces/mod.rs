//! The data interfaces: the contract between the proxy, its backends and its clients.
//!
//! One trait per interface, in snake_case as DESIGN.md names them. Traits take owned
//! [`bytes::Bytes`] so a request's buffers move to the backend without copying.

mod keyvalue;
mod pubsub;
mod queue;
pub mod timeseries;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use keyvalue::{KeyValueBasic, KeyValueBatch, KeyValueScan, KeyValueTtl, ScanPage, TtlState};
pub use pubsub::{Message, PubSubBasic, Subscription};
pub use queue::{QueueBasic, ReceivedMessage, check_receive};
pub use timeseries::{AggregateFunction, AggregateRow, Aggregation, Event, Query, TimeSeriesBasic};

/// The data interfaces a namespace can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interface {
    KeyvalueBasic,
    KeyvalueTtl,
    KeyvalueScan,
    KeyvalueBatch,
    PubsubBasic,
    QueueBasic,
    TimeseriesBasic,
}

impl Interface {
    pub const ALL: [Interface; 7] = [
        Interface::KeyvalueBasic,
        Interface::KeyvalueTtl,
        Interface::KeyvalueScan,
        Interface::KeyvalueBatch,
        Interface::PubsubBasic,
        Interface::QueueBasic,
        Interface::TimeseriesBasic,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Interface::KeyvalueBasic => "keyvalue_basic",
            Interface::KeyvalueTtl => "keyvalue_ttl",
            Interface::KeyvalueScan => "keyvalue_scan",
            Interface::KeyvalueBatch => "keyvalue_batch",
            Interface::PubsubBasic => "pubsub_basic",
            Interface::QueueBasic => "queue_basic",
            Interface::TimeseriesBasic => "timeseries_basic",
        }
    }

    pub fn parse(name: &str) -> Option<Interface> {
        Interface::ALL.into_iter().find(|i| i.as_str() == name)
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
