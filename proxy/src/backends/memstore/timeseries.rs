//! Time series: per stream, events kept sorted by time (ties in append order), so a range
//! query is a binary search plus a walk.

use parking_lot::RwLock;
use std::collections::HashMap;

use async_trait::async_trait;

use crate::BackendResult;
use crate::interfaces::{AggregateRow, Aggregation, Event, Query, TimeSeriesBasic};

/// In-memory event streams: timeseries_basic.
#[derive(Default)]
pub struct SeriesStore {
    streams: RwLock<HashMap<String, Vec<Event>>>,
}

impl SeriesStore {
    /// The events in `[start_ms, end_ms)` of a stream, in order.
    fn with_range<R>(&self, stream: &str, start_ms: i64, end_ms: i64, f: impl FnOnce(&[Event]) -> R) -> R {
        let streams = self.streams.read();
        let events = streams.get(stream).map(Vec::as_slice).unwrap_or_default();
        let lo = events.partition_point(|e| e.timestamp_ms < start_ms);
        let hi = events.partition_point(|e| e.timestamp_ms < end_ms).max(lo);
        f(&events[lo..hi])
    }
}

#[async_trait]
impl TimeSeriesBasic for SeriesStore {
    async fn append(&self, stream: String, events: Vec<Event>) -> BackendResult<u64> {
        let appended = events.len() as u64;
        let mut streams = self.streams.write();
        let series = streams.entry(stream).or_default();
        for event in events {
            // After every event with the same or an earlier time: ties keep append order.
            let at = series.partition_point(|e| e.timestamp_ms <= event.timestamp_ms);
            series.insert(at, event);
        }
        Ok(appended)
    }

    async fn query(&self, stream: String, query: Query) -> BackendResult<Vec<Event>> {
        Ok(self.with_range(&stream, query.start_ms, query.end_ms, |events| {
            events
                .iter()
                .filter(|e| query.matches(e))
                .take(query.max_events())
                .cloned()
                .collect()
        }))
    }

    async fn aggregate(&self, stream: String, aggregation: Aggregation) -> BackendResult<Vec<AggregateRow>> {
        aggregation.validate()?;
        Ok(
            self.with_range(&stream, aggregation.start_ms, aggregation.end_ms, |events| {
                aggregation.compute(events)
            }),
        )
    }
}
