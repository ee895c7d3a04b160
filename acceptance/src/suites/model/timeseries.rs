//! The timeseries_basic model: every event appended, in append order. Queries must give
//! the model's events in the range and matching the filters, ordered by time with ties
//! in append order, cut at the limit; aggregates must equal [`reference`], computed here
//! from the definitions (not the proxy's own `Aggregation::compute`).
//!
//! Values are quarters of small integers, so sums are exact in any order; events lack
//! the `region` tag or the `v` field now and then, and times collide often.

use std::collections::BTreeMap;

use anyhow::ensure;
use prism_proxy::interfaces::{AggregateFunction, Aggregation, Event, EventColumns, Query};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::{pick, run_model};
use crate::suites::{CaseResult, Subject};

const BASE: i64 = 1_700_000_000_000;
/// Events fall in [BASE, BASE + SPAN).
const SPAN: u16 = 2_000;
const HOSTS: [&str; 3] = ["a", "b", "c"];
const REGIONS: [&str; 2] = ["eu", "us"];
const BUCKETS: [u64; 5] = [1, 7, 100, 250, 5_000];

/// One event as the model writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Ev {
    /// Milliseconds after BASE.
    pub t: u16,
    pub host: u8,
    /// None: the event has no region tag.
    pub region: Option<u8>,
    /// Quarters; None: the event has no `v` field (only `w`).
    pub v: Option<i16>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum TimeSeriesOp {
    Append(Vec<Ev>),
    /// The same events appended as columns.
    AppendColumns(Vec<Ev>),
    /// Events in [start, start + len) after BASE, of one host if given, at most `limit`
    /// (0: no limit).
    Query {
        start: u16,
        len: u16,
        host: Option<u8>,
        limit: u8,
    },
    /// Function number f of `v` in buckets of width number b, grouped by nothing (0),
    /// host (1) or host and region (2), of one host if given.
    Aggregate {
        start: u16,
        len: u16,
        host: Option<u8>,
        f: u8,
        b: u8,
        group: u8,
    },
}

fn ev() -> impl Strategy<Value = Ev> {
    (
        // Multiples of 10 half the time, so times collide.
        prop_oneof![0..SPAN, (0..SPAN / 10).prop_map(|t| t * 10)],
        0..HOSTS.len() as u8,
        prop::option::weighted(0.8, 0..REGIONS.len() as u8),
        prop::option::weighted(0.9, -400i16..400),
    )
        .prop_map(|(t, host, region, v)| Ev { t, host, region, v })
}

fn op() -> impl Strategy<Value = TimeSeriesOp> {
    let range = (0..SPAN, 1..SPAN + 100);
    let host = prop::option::of(0..HOSTS.len() as u8);
    prop_oneof![
        2 => prop::collection::vec(ev(), 1..40).prop_map(TimeSeriesOp::Append),
        2 => prop::collection::vec(ev(), 1..40).prop_map(TimeSeriesOp::AppendColumns),
        2 => (range.clone(), host.clone(), 0u8..20)
            .prop_map(|((start, len), host, limit)| TimeSeriesOp::Query { start, len, host, limit }),
        3 => (range, host, 0..AggregateFunction::ALL.len() as u8, 0..BUCKETS.len() as u8, 0u8..3).prop_map(
            |((start, len), host, f, b, group)| TimeSeriesOp::Aggregate { start, len, host, f, b, group }
        ),
    ]
}

pub async fn run(s: Subject) -> CaseResult {
    run_model(s, "timeseries", 16, prop::collection::vec(op(), 1..12), |s, ops| {
        Box::pin(check(s, ops))
    })
    .await
}

fn event(e: &Ev) -> anyhow::Result<Event> {
    let mut tags = BTreeMap::from([("host".to_string(), pick(&HOSTS, e.host)?.to_string())]);
    if let Some(region) = e.region {
        tags.insert("region".into(), pick(&REGIONS, region)?.to_string());
    }
    let fields = match e.v {
        Some(v) => BTreeMap::from([("v".to_string(), f64::from(v) / 4.0)]),
        None => BTreeMap::from([("w".to_string(), 1.0)]),
    };
    Ok(Event {
        timestamp_ms: BASE + i64::from(e.t),
        tags,
        fields,
    })
}

fn filters(host: Option<u8>) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(match host {
        Some(h) => BTreeMap::from([("host".to_string(), pick(&HOSTS, h)?.to_string())]),
        None => BTreeMap::new(),
    })
}

pub(super) async fn check(s: Subject, ops: Vec<TimeSeriesOp>) -> CaseResult {
    let ts = s.series()?;
    let stream = s.name("ts");
    let mut model: Vec<Event> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match op {
            TimeSeriesOp::Append(evs) | TimeSeriesOp::AppendColumns(evs) => {
                let events = evs.iter().map(event).collect::<anyhow::Result<Vec<_>>>()?;
                // A subject without `AppendColumns` appends those events as events.
                let columns = s.capabilities.contains(&crate::Capability::TimeseriesColumns);
                let stored = match op {
                    TimeSeriesOp::AppendColumns(_) if columns => {
                        ts.append_columns(stream.clone(), EventColumns::from_events(&events))
                            .await?
                    }
                    _ => ts.append(stream.clone(), events.clone()).await?,
                };
                ensure!(
                    stored == events.len() as u64,
                    "step {step}: append of {} events reported {stored}",
                    events.len()
                );
                model.extend(events);
            }
            TimeSeriesOp::Query {
                start,
                len,
                host,
                limit,
            } => {
                let start_ms = BASE + i64::from(*start);
                let query = Query {
                    start_ms,
                    end_ms: start_ms + i64::from(*len),
                    filters: filters(*host)?,
                    limit: u32::from(*limit),
                };
                let got = ts.query(stream.clone(), query.clone()).await?;
                let mut want: Vec<&Event> = model.iter().filter(|e| query.matches(e)).collect();
                // Stable: ties stay in append order.
                want.sort_by_key(|e| e.timestamp_ms);
                want.truncate(query.max_events());
                ensure!(
                    got.iter().eq(want.iter().copied()),
                    "step {step} {op:?}: got {} events {:?}, the model {} {:?}",
                    got.len(),
                    brief(got.iter()),
                    want.len(),
                    brief(want.iter().copied())
                );
            }
            TimeSeriesOp::Aggregate {
                start,
                len,
                host,
                f,
                b,
                group,
            } => {
                let start_ms = BASE + i64::from(*start);
                let group_by: Vec<String> = ["host", "region"][..usize::from(*group).min(2)]
                    .iter()
                    .map(|t| t.to_string())
                    .collect();
                let a = Aggregation {
                    start_ms,
                    end_ms: start_ms + i64::from(*len),
                    filters: filters(*host)?,
                    bucket_ms: pick(&BUCKETS, *b)?,
                    metric: "v".into(),
                    function: pick(&AggregateFunction::ALL, *f)?,
                    group_by,
                };
                let rows = ts.aggregate(stream.clone(), a.clone()).await?;
                let got: Vec<(i64, Vec<String>, f64, u64)> = rows
                    .iter()
                    .map(|r| {
                        let group = a.group_by.iter().map(|t| r.group.get(t).cloned().unwrap_or_default());
                        (r.bucket_start_ms, group.collect(), r.value, r.count)
                    })
                    .collect();
                let want: Vec<(i64, Vec<String>, f64, u64)> = reference(&model, &a)
                    .into_iter()
                    .map(|((bucket, group), (value, count))| (bucket, group, value, count))
                    .collect();
                let same = got.len() == want.len()
                    && got.iter().zip(&want).all(|(g, w)| {
                        g.0 == w.0 && g.1 == w.1 && g.3 == w.3 && (g.2 - w.2).abs() <= 1e-9 * w.2.abs().max(1.0)
                    });
                ensure!(same, "step {step} {op:?}: rows {got:?}, the reference {want:?}");
            }
        }
    }
    Ok(())
}

/// Times and values of events, for a failure's message.
fn brief<'a>(events: impl Iterator<Item = &'a Event>) -> Vec<(i64, Option<f64>)> {
    events
        .map(|e| (e.timestamp_ms - BASE, e.fields.get("v").copied()))
        .collect()
}

/// The aggregation computed from its definition: the events in the range matching the
/// filters and having the metric, grouped by epoch-aligned bucket and group-by tags
/// (missing tags as ""), each function applied to the sorted values. Rows come ordered
/// by bucket, then group, as the interface orders them.
pub(crate) fn reference(events: &[Event], a: &Aggregation) -> BTreeMap<(i64, Vec<String>), (f64, u64)> {
    let mut groups: BTreeMap<(i64, Vec<String>), Vec<f64>> = BTreeMap::new();
    for e in events {
        if e.timestamp_ms < a.start_ms || e.timestamp_ms >= a.end_ms {
            continue;
        }
        if a.filters.iter().any(|(k, v)| e.tags.get(k) != Some(v)) {
            continue;
        }
        let Some(value) = e.fields.get(&a.metric) else {
            continue;
        };
        let bucket = e.timestamp_ms.div_euclid(a.bucket_ms as i64) * a.bucket_ms as i64;
        let group = a
            .group_by
            .iter()
            .map(|t| e.tags.get(t).cloned().unwrap_or_default())
            .collect();
        groups.entry((bucket, group)).or_default().push(*value);
    }
    groups
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_by(f64::total_cmp);
            let n = v.len();
            let rank = |p: f64| v[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
            let value = match a.function {
                AggregateFunction::Count => n as f64,
                AggregateFunction::Sum => v.iter().sum(),
                AggregateFunction::Avg => v.iter().sum::<f64>() / n as f64,
                AggregateFunction::Min => v[0],
                AggregateFunction::Max => v[n - 1],
                AggregateFunction::P95 => rank(0.95),
                AggregateFunction::P99 => rank(0.99),
            };
            (k, (value, n as u64))
        })
        .collect()
}
