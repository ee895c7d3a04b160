//! timeseries_basic, plus the reference aggregation that in-process backends use and that
//! tests compare real backends against.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::EventColumns;
use crate::{BackendError, BackendResult};

/// One event: a time, string tags and numeric fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Event {
    /// When it happened, Unix milliseconds.
    pub timestamp_ms: i64,
    /// Dimensions to filter and group by.
    pub tags: BTreeMap<String, String>,
    /// Measurements to aggregate.
    pub fields: BTreeMap<String, f64>,
}

/// Events with `start_ms <= timestamp_ms < end_ms` whose tags equal every filter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// First millisecond included.
    pub start_ms: i64,
    /// First millisecond excluded.
    pub end_ms: i64,
    /// Tags an event must have, with these values.
    pub filters: BTreeMap<String, String>,
    /// At most this many events (the server fills in its maximum for 0).
    pub limit: u32,
}

/// How the values of one bucket and group become one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    /// How many values.
    Count,
    /// Their sum.
    Sum,
    /// Their mean.
    Avg,
    /// The smallest.
    Min,
    /// The largest.
    Max,
    /// The 95th percentile, by nearest rank.
    P95,
    /// The 99th percentile, by nearest rank.
    P99,
}

/// Events in a range, bucketed by time and grouped by tags, one metric aggregated.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregation {
    /// First millisecond included.
    pub start_ms: i64,
    /// First millisecond excluded.
    pub end_ms: i64,
    /// Tags an event must have, with these values.
    pub filters: BTreeMap<String, String>,
    /// Bucket width; buckets are aligned to the Unix epoch.
    pub bucket_ms: u64,
    /// The field aggregated.
    pub metric: String,
    /// How it is aggregated.
    pub function: AggregateFunction,
    /// Tags that split each bucket into groups.
    pub group_by: Vec<String>,
}

/// One aggregated (bucket, group).
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    /// The bucket's first millisecond.
    pub bucket_start_ms: i64,
    /// The group-by tags and their values.
    pub group: BTreeMap<String, String>,
    /// The aggregate.
    pub value: f64,
    /// How many values went into it.
    pub count: u64,
}

/// timeseries_basic.
#[async_trait]
pub trait TimeSeriesBasic: Send + Sync {
    /// Returns how many events were stored.
    async fn append(&self, stream: String, events: Vec<Event>) -> BackendResult<u64>;
    /// Appends the events of `columns`, exactly as [`TimeSeriesBasic::append`] would
    /// append [`EventColumns::into_events`]; INVALID_ARGUMENT for malformed columns. The
    /// default converts; a backend that can store columns directly overrides it.
    async fn append_columns(&self, stream: String, columns: EventColumns) -> BackendResult<u64> {
        columns.validate()?;
        self.append(stream, columns.into_events()).await
    }
    /// Ordered by time; ties in append order.
    async fn query(&self, stream: String, query: Query) -> BackendResult<Vec<Event>>;
    /// One row per (bucket, group) having at least one value of `metric`, ordered by
    /// bucket then group.
    async fn aggregate(&self, stream: String, aggregation: Aggregation) -> BackendResult<Vec<AggregateRow>>;
}

impl Query {
    /// `limit` as a count, 0 meaning no limit.
    pub fn max_events(&self) -> usize {
        if self.limit == 0 {
            usize::MAX
        } else {
            self.limit as usize
        }
    }

    /// Whether `event` is in the range and matches the filters.
    pub fn matches(&self, event: &Event) -> bool {
        event.timestamp_ms >= self.start_ms && event.timestamp_ms < self.end_ms && matches_filters(&self.filters, event)
    }
}

fn matches_filters(filters: &BTreeMap<String, String>, event: &Event) -> bool {
    filters.iter().all(|(k, v)| event.tags.get(k) == Some(v))
}

impl Aggregation {
    /// INVALID_ARGUMENT for a zero or oversized bucket, a range whose first bucket would
    /// start before the earliest representable time, or a missing metric.
    pub fn validate(&self) -> BackendResult<()> {
        if self.bucket_ms == 0 {
            return Err(BackendError::invalid("bucket_ms", "must be greater than 0"));
        }
        let Ok(width) = i64::try_from(self.bucket_ms) else {
            return Err(BackendError::InvalidArgument {
                field: "bucket_ms".into(),
                message: format!("{} is over the widest bucket, {} ms", self.bucket_ms, i64::MAX),
                limit: Some(format!("bucket_ms={}", i64::MAX)),
            });
        };
        // Buckets only grow with time, so if the range's first one can be named, every
        // bucket of an event in the range can.
        if self.start_ms.checked_sub(self.start_ms.rem_euclid(width)).is_none() {
            return Err(BackendError::invalid(
                "start_ms",
                format!(
                    "the bucket of {} would start before the earliest time ({} ms); start later or use narrower buckets",
                    self.start_ms,
                    i64::MIN
                ),
            ));
        }
        if self.metric.is_empty() {
            return Err(BackendError::invalid("metric", "must name a field"));
        }
        Ok(())
    }

    /// Whether `event` is in the range and matches the filters.
    pub fn matches(&self, event: &Event) -> bool {
        event.timestamp_ms >= self.start_ms && event.timestamp_ms < self.end_ms && matches_filters(&self.filters, event)
    }

    /// Start of the (epoch-aligned) bucket holding `timestamp_ms`. Exact for every event
    /// in the range of a validated aggregation; saturates (never wraps) otherwise.
    pub fn bucket_of(&self, timestamp_ms: i64) -> i64 {
        let width = i64::try_from(self.bucket_ms).unwrap_or(i64::MAX);
        timestamp_ms.saturating_sub(timestamp_ms.rem_euclid(width))
    }

    /// The reference computation: aggregates `events` (any order) exactly as the
    /// interface defines it. Tags missing from an event group as "".
    pub fn compute<'a>(&self, events: impl IntoIterator<Item = &'a Event>) -> Vec<AggregateRow> {
        let mut groups: BTreeMap<(i64, Vec<String>), Vec<f64>> = BTreeMap::new();
        for event in events {
            if !self.matches(event) {
                continue;
            }
            let Some(value) = event.fields.get(&self.metric) else {
                continue;
            };
            let group = self
                .group_by
                .iter()
                .map(|tag| event.tags.get(tag).cloned().unwrap_or_default())
                .collect();
            groups
                .entry((self.bucket_of(event.timestamp_ms), group))
                .or_default()
                .push(*value);
        }
        groups
            .into_iter()
            .map(|((bucket_start_ms, group), mut values)| AggregateRow {
                bucket_start_ms,
                group: self.group_by.iter().cloned().zip(group).collect(),
                count: values.len() as u64,
                value: self.function.apply(&mut values),
            })
            .collect()
    }
}

impl AggregateFunction {
    /// Every function, in declaration order.
    pub const ALL: [AggregateFunction; 7] = [
        AggregateFunction::Count,
        AggregateFunction::Sum,
        AggregateFunction::Avg,
        AggregateFunction::Min,
        AggregateFunction::Max,
        AggregateFunction::P95,
        AggregateFunction::P99,
    ];

    /// Applies the function to a non-empty set of values (sorting them for percentiles).
    pub fn apply(self, values: &mut [f64]) -> f64 {
        let n = values.len();
        match self {
            AggregateFunction::Count => n as f64,
            AggregateFunction::Sum => values.iter().sum(),
            AggregateFunction::Avg => values.iter().sum::<f64>() / n as f64,
            AggregateFunction::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
            AggregateFunction::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            AggregateFunction::P95 => nearest_rank(values, 0.95),
            AggregateFunction::P99 => nearest_rank(values, 0.99),
        }
    }
}

/// The value at rank ceil(p * n) (1-based) of the sorted values.
fn nearest_rank(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = (p * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: i64, host: &str, v: f64) -> Event {
        Event {
            timestamp_ms: ts,
            tags: [("host".to_string(), host.to_string())].into(),
            fields: [("v".to_string(), v)].into(),
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&mut values, 0.95), 95.0);
        assert_eq!(nearest_rank(&mut values, 0.99), 99.0);
        assert_eq!(nearest_rank(&mut [7.0], 0.99), 7.0);
    }

    /// Extreme numbers are refused with the field named, never wrapped into a bucket on
    /// the other side of the epoch.
    #[test]
    fn extreme_buckets_and_ranges_are_refused_not_wrapped() {
        let base = Aggregation {
            start_ms: i64::MIN,
            end_ms: i64::MAX,
            filters: BTreeMap::new(),
            bucket_ms: 10,
            metric: "v".into(),
            function: AggregateFunction::Count,
            group_by: Vec::new(),
        };
        let field = |a: &Aggregation| match a.validate() {
            Err(BackendError::InvalidArgument { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(&base),
            "start_ms",
            "i64::MIN's bucket of 10 ms starts before i64::MIN"
        );
        let wide = Aggregation {
            bucket_ms: u64::MAX,
            start_ms: 0,
            ..base.clone()
        };
        assert_eq!(field(&wide), "bucket_ms");
        // The earliest range that works, and its first event's bucket.
        let earliest = Aggregation {
            start_ms: i64::MIN + 8,
            ..base.clone()
        };
        earliest.validate().expect("i64::MIN + 8 starts a bucket of 10 ms");
        assert_eq!(earliest.bucket_of(i64::MIN + 8), i64::MIN + 8);
        let whole = Aggregation {
            bucket_ms: i64::MAX as u64,
            start_ms: -1,
            ..base
        };
        whole.validate().expect("the widest bucket");
        assert_eq!(whole.bucket_of(-1), -i64::MAX);
        assert_eq!(whole.bucket_of(5), 0);
    }

    #[test]
    fn buckets_align_to_epoch_including_negative_times() {
        let agg = Aggregation {
            start_ms: i64::MIN,
            end_ms: i64::MAX,
            filters: BTreeMap::new(),
            bucket_ms: 10,
            metric: "v".into(),
            function: AggregateFunction::Sum,
            group_by: vec!["host".into()],
        };
        let events = [
            event(-1, "a", 1.0),
            event(0, "a", 2.0),
            event(9, "a", 3.0),
            event(5, "b", 4.0),
        ];
        let rows = agg.compute(&events);
        let summary: Vec<(i64, &str, f64)> = rows
            .iter()
            .map(|r| (r.bucket_start_ms, r.group["host"].as_str(), r.value))
            .collect();
        assert_eq!(summary, vec![(-10, "a", 1.0), (0, "a", 5.0), (0, "b", 4.0)]);
    }
}
