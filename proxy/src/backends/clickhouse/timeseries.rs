//! timeseries_basic over `prism_events`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use serde::Deserialize;

use super::rows::Batch;
use super::{Clickhouse, error};
use crate::BackendError;
use crate::backends::driver::bounded;
use crate::interfaces::{AggregateFunction, AggregateRow, Aggregation, Event, EventColumns, Query, TimeSeriesBasic};

#[derive(Debug, clickhouse::Row, Deserialize)]
struct StoredEvent {
    ts: i64,
    tag_keys: Vec<String>,
    tag_values: Vec<String>,
    field_keys: Vec<String>,
    field_values: Vec<f64>,
}

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Bucket {
    bucket: i64,
    grp: Vec<String>,
    n: u64,
    value: f64,
}

/// Orders events appended in the same millisecond. Starts at the wall clock in
/// nanoseconds so a restarted proxy keeps counting upwards.
static SEQ: std::sync::LazyLock<AtomicU64> = std::sync::LazyLock::new(|| {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    AtomicU64::new(nanos)
});

/// A WHERE clause for stream, time range and tag filters, and the values it binds.
struct Selection {
    sql: String,
    binds: Vec<Bind>,
}

enum Bind {
    Str(String),
    Int(i64),
}

impl Selection {
    fn new(stream: String, start_ms: i64, end_ms: i64, filters: &BTreeMap<String, String>) -> Selection {
        let mut sql = "stream = ? AND ts >= ? AND ts < ?".to_string();
        let mut binds = vec![Bind::Str(stream), Bind::Int(start_ms), Bind::Int(end_ms)];
        for (key, value) in filters {
            sql.push_str(" AND has(tag_keys, ?) AND tag_values[indexOf(tag_keys, ?)] = ?");
            binds.extend([Bind::Str(key.clone()), Bind::Str(key.clone()), Bind::Str(value.clone())]);
        }
        Selection { sql, binds }
    }

    fn bind(self, mut query: clickhouse::query::Query) -> clickhouse::query::Query {
        for bind in self.binds {
            query = match bind {
                Bind::Str(s) => query.bind(s),
                Bind::Int(i) => query.bind(i),
            };
        }
        query
    }
}

/// The SQL computing `function` over `v` for one group, matching the reference exactly
/// (percentiles by nearest rank).
fn aggregate_sql(function: AggregateFunction) -> &'static str {
    match function {
        AggregateFunction::Count => "toFloat64(count())",
        AggregateFunction::Sum => "toFloat64(sum(v))",
        AggregateFunction::Avg => "toFloat64(avg(v))",
        AggregateFunction::Min => "toFloat64(min(v))",
        AggregateFunction::Max => "toFloat64(max(v))",
        AggregateFunction::P95 => "toFloat64(arraySort(groupArray(v))[toUInt64(greatest(1, ceil(0.95 * count())))])",
        AggregateFunction::P99 => "toFloat64(arraySort(groupArray(v))[toUInt64(greatest(1, ceil(0.99 * count())))])",
    }
}

#[async_trait]
impl TimeSeriesBasic for Clickhouse {
    async fn append(&self, stream: String, events: Vec<Event>) -> Result<u64, BackendError> {
        self.append_columns(stream, EventColumns::from_events(&events)).await
    }

    async fn append_columns(&self, stream: String, columns: EventColumns) -> Result<u64, BackendError> {
        columns.validate()?;
        let n = columns.len() as u64;
        let first_seq = SEQ.fetch_add(n, Ordering::Relaxed);
        self.batcher
            .write(Batch::new(format!("{}{stream}", self.prefix), first_seq, columns))
            .await?;
        Ok(n)
    }

    async fn query(&self, stream: String, query: Query) -> Result<Vec<Event>, BackendError> {
        let client = self.ready().await?;
        let selection = Selection::new(
            format!("{}{stream}", self.prefix),
            query.start_ms,
            query.end_ms,
            &query.filters,
        );
        let mut sql = format!(
            "SELECT ts, tag_keys, tag_values, field_keys, field_values FROM prism_events WHERE {} ORDER BY ts, seq",
            selection.sql
        );
        if query.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", query.limit));
        }
        let request = selection.bind(client.query(&sql));
        let rows: Vec<StoredEvent> = bounded("clickhouse", self.timeout, async {
            request.fetch_all().await.map_err(error)
        })
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| Event {
                timestamp_ms: r.ts,
                tags: r.tag_keys.into_iter().zip(r.tag_values).collect(),
                fields: r.field_keys.into_iter().zip(r.field_values).collect(),
            })
            .collect())
    }

    async fn aggregate(&self, stream: String, aggregation: Aggregation) -> Result<Vec<AggregateRow>, BackendError> {
        aggregation.validate()?;
        let width =
            i64::try_from(aggregation.bucket_ms).map_err(|_| BackendError::invalid("bucket_ms", "is too large"))?;
        let client = self.ready().await?;
        let selection = Selection::new(
            format!("{}{stream}", self.prefix),
            aggregation.start_ms,
            aggregation.end_ms,
            &aggregation.filters,
        );
        // Buckets align to the epoch (floor, also for negative times); a missing tag
        // groups as "" (indexOf gives 0, and element 0 of an array is the default). The
        // width is cast: ClickHouse 18.16 types `ts % 250` as Int8 (a literal's smallest
        // type), so remainders of 128..249 wrapped and buckets of widths up to 255 (and
        // 32768..65535) came out wrong (the time-series model check found it).
        let group = if aggregation.group_by.is_empty() {
            "CAST([] AS Array(String))".to_string()
        } else {
            let parts: Vec<&str> = aggregation
                .group_by
                .iter()
                .map(|_| "tag_values[indexOf(tag_keys, ?)]")
                .collect();
            format!("[{}]", parts.join(", "))
        };
        let sql = format!(
            "SELECT ts - ((ts % toInt64({width})) + toInt64({width})) % toInt64({width}) AS bucket, {group} AS grp,
                    count() AS n, {value} AS value
             FROM (SELECT ts, tag_keys, tag_values, field_values[indexOf(field_keys, ?)] AS v
                   FROM prism_events WHERE {selection} AND has(field_keys, ?))
             GROUP BY bucket, grp",
            value = aggregate_sql(aggregation.function),
            selection = selection.sql,
        );
        let mut request = client.query(&sql);
        for tag in &aggregation.group_by {
            request = request.bind(tag.as_str());
        }
        request = request.bind(aggregation.metric.as_str());
        request = selection.bind(request).bind(aggregation.metric.as_str());
        let mut rows: Vec<Bucket> = bounded("clickhouse", self.timeout, async {
            request.fetch_all().await.map_err(error)
        })
        .await?;
        rows.sort_by(|a, b| (a.bucket, &a.grp).cmp(&(b.bucket, &b.grp)));
        Ok(rows
            .into_iter()
            .map(|r| AggregateRow {
                bucket_start_ms: r.bucket,
                group: aggregation.group_by.iter().cloned().zip(r.grp).collect(),
                value: r.value,
                count: r.n,
            })
            .collect())
    }
}
