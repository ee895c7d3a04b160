//! The data interfaces: the contract between the proxy, its backends and its clients.
//!
//! One trait per interface, named in snake_case everywhere (configs, registries, test
//! names). Traits take owned [`bytes::Bytes`] so a request's buffers move to the backend
//! without copying.

mod columns;
mod keyvalue;
mod operation;
mod pubsub;
mod queue;
mod timeseries;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use columns::{EventColumns, FieldColumn, TagColumn};
pub use keyvalue::{KeyValueBasic, KeyValueBatch, KeyValueScan, KeyValueTtl, ScanPage, TtlState};
pub use operation::Operation;
pub use pubsub::{Message, PubSubBasic, Subscription};
pub use queue::{QueueBasic, ReceivedMessage, check_receive};
pub use timeseries::{AggregateFunction, AggregateRow, Aggregation, Event, Query, TimeSeriesBasic};

/// The data interfaces a namespace can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interface {
    /// set, get, delete, exists.
    KeyvalueBasic,
    /// set with ttl, expire, ttl, persist.
    KeyvalueTtl,
    /// scan by prefix with a cursor, count.
    KeyvalueScan,
    /// batch set, get and delete.
    KeyvalueBatch,
    /// publish, subscribe (a server stream), unsubscribe.
    PubsubBasic,
    /// enqueue, receive with a visibility timeout, ack, nack.
    QueueBasic,
    /// append events, query a range, aggregate into buckets.
    TimeseriesBasic,
}

impl Interface {
    /// Every interface, in canonical order.
    pub const ALL: [Interface; 7] = [
        Interface::KeyvalueBasic,
        Interface::KeyvalueTtl,
        Interface::KeyvalueScan,
        Interface::KeyvalueBatch,
        Interface::PubsubBasic,
        Interface::QueueBasic,
        Interface::TimeseriesBasic,
    ];

    /// The snake_case name used in configs, registries and test names.
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

    /// The interface named `name` (snake_case).
    pub fn parse(name: &str) -> Option<Interface> {
        Interface::ALL.into_iter().find(|i| i.as_str() == name)
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
