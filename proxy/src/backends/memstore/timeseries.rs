//! Time series: per stream, events ordered by time (ties in append order) in a B-tree,
//! so an append costs O(log n) per event in any time order, and a range query is a seek
//! plus a walk.

use parking_lot::RwLock;
use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;

use crate::BackendError;
use crate::interfaces::{AggregateRow, Aggregation, Event, Query, TimeSeriesBasic};

/// In-memory event streams: timeseries_basic.
#[derive(Default)]
pub struct SeriesStore {
    streams: RwLock<HashMap<String, Series>>,
}

/// One stream's events by (time, append number): the number keeps ties in append order.
#[derive(Default)]
struct Series {
    events: BTreeMap<(i64, u64), Event>,
    appended: u64,
}

impl SeriesStore {
    /// The events in `[start_ms, end_ms)` of a stream, in order.
    fn with_range<R>(
        &self,
        stream: &str,
        start_ms: i64,
        end_ms: i64,
        f: impl FnOnce(&mut dyn Iterator<Item = &Event>) -> R,
    ) -> R {
        let streams = self.streams.read();
        let mut events = streams
            .get(stream)
            .filter(|_| start_ms < end_ms)
            .into_iter()
            .flat_map(|series| series.events.range((start_ms, 0)..(end_ms, 0)).map(|(_, e)| e));
        f(&mut events)
    }
}

#[async_trait]
impl TimeSeriesBasic for SeriesStore {
    async fn append(&self, stream: String, events: Vec<Event>) -> Result<u64, BackendError> {
        let appended = events.len() as u64;
        let mut streams = self.streams.write();
        let series = streams.entry(stream).or_default();
        for event in events {
            series.appended += 1;
            series.events.insert((event.timestamp_ms, series.appended), event);
        }
        Ok(appended)
    }

    async fn query(&self, stream: String, query: Query) -> Result<Vec<Event>, BackendError> {
        Ok(self.with_range(&stream, query.start_ms, query.end_ms, |events| {
            events
                .filter(|e| query.matches(e))
                .take(query.max_events())
                .cloned()
                .collect()
        }))
    }

    async fn aggregate(&self, stream: String, aggregation: Aggregation) -> Result<Vec<AggregateRow>, BackendError> {
        aggregation.validate()?;
        Ok(
            self.with_range(&stream, aggregation.start_ms, aggregation.end_ms, |events| {
                aggregation.compute(events)
            }),
        )
    }
}
