//! timeseries_basic: ranges, filters and aggregates against a reference computed here.

use std::collections::BTreeMap;

use anyhow::ensure;
use prism_proxy::BackendError;
use prism_proxy::Interface;
use prism_proxy::interfaces::{AggregateFunction, Aggregation, Event, EventColumns, FieldColumn, Query, TagColumn};

use super::{Case, CaseResult, Subject};
use crate::{Capability, case};

pub fn cases() -> Vec<Case> {
    let i = Interface::TimeseriesBasic;
    vec![
        case!(i, range_bounds_are_exact),
        case!(i, events_come_ordered_by_time),
        case!(i, filters_match_tags_exactly),
        case!(i, limit_caps_the_result),
        case!(i, aggregates_match_reference),
        case!(i, columns_append_the_same_events, needs: [Capability::TimeseriesColumns]),
        case!(i, columns_and_events_share_one_append_order, needs: [Capability::TimeseriesColumns]),
        case!(i, malformed_columns_are_refused_naming_the_field, needs: [Capability::TimeseriesColumns]),
        case!(i, model_random_sequences),
    ]
}

const BASE: i64 = 1_700_000_000_000;

fn event(ts: i64, host: &str, region: &str, v: f64) -> Event {
    Event {
        timestamp_ms: ts,
        tags: [
            ("host".to_string(), host.to_string()),
            ("region".to_string(), region.to_string()),
        ]
        .into(),
        fields: [("v".to_string(), v)].into(),
    }
}

fn range(start: i64, end: i64) -> Query {
    Query {
        start_ms: start,
        end_ms: end,
        filters: BTreeMap::new(),
        limit: 0,
    }
}

async fn range_bounds_are_exact(s: Subject) -> CaseResult {
    let ts = s.series()?;
    let stream = s.name("r");
    let events: Vec<Event> = (0..10).map(|i| event(BASE + i * 10, "a", "eu", i as f64)).collect();
    ts.append(stream.clone(), events).await?;
    let got = ts.query(stream, range(BASE + 20, BASE + 50)).await?;
    let times: Vec<i64> = got.iter().map(|e| e.timestamp_ms - BASE).collect();
    ensure!(
        times == vec![20, 30, 40],
        "[20, 50) gave {times:?}: start is inclusive, end exclusive"
    );
    Ok(())
}

async fn events_come_ordered_by_time(s: Subject) -> CaseResult {
    let ts = s.series()?;
    let stream = s.name("o");
    let order = [5, 1, 9, 3, 7, 2, 8, 0, 6, 4];
    ts.append(
        stream.clone(),
        order
            .iter()
            .map(|i| event(BASE + i * 100, "a", "eu", *i as f64))
            .collect(),
    )
    .await?;
    let got = ts.query(stream, range(BASE, BASE + 10_000)).await?;
    let times: Vec<i64> = got.iter().map(|e| (e.timestamp_ms - BASE) / 100).collect();
    ensure!(times == (0..10).collect::<Vec<_>>(), "out of order: {times:?}");
    ensure!(
        got.iter()
            .all(|e| e.fields["v"] == ((e.timestamp_ms - BASE) / 100) as f64),
        "fields kept with their event"
    );
    Ok(())
}

async fn filters_match_tags_exactly(s: Subject) -> CaseResult {
    let ts = s.series()?;
    let stream = s.name("f");
    ts.append(
        stream.clone(),
        vec![
            event(BASE, "a", "eu", 1.0),
            event(BASE + 1, "b", "eu", 2.0),
            event(BASE + 2, "a", "us", 3.0),
        ],
    )
    .await?;
    let mut q = range(BASE, BASE + 10);
    q.filters = [
        ("host".to_string(), "a".to_string()),
        ("region".to_string(), "eu".to_string()),
    ]
    .into();
    let got = ts.query(stream.clone(), q).await?;
    ensure!(
        got.len() == 1 && got[0].fields["v"] == 1.0,
        "host=a,region=eu gave {got:?}"
    );
    let mut q = range(BASE, BASE + 10);
    q.filters = [("host".to_string(), "A".to_string())].into();
    ensure!(
        ts.query(stream, q).await?.is_empty(),
        "tag matching is exact (case-sensitive)"
    );
    Ok(())
}

async fn limit_caps_the_result(s: Subject) -> CaseResult {
    let ts = s.series()?;
    let stream = s.name("l");
    ts.append(
        stream.clone(),
        (0..50).map(|i| event(BASE + i, "a", "eu", 0.0)).collect(),
    )
    .await?;
    let mut q = range(BASE, BASE + 100);
    q.limit = 7;
    let got = ts.query(stream, q).await?;
    let times: Vec<i64> = got.iter().map(|e| e.timestamp_ms - BASE).collect();
    ensure!(
        times == (0..7).collect::<Vec<_>>(),
        "limit 7 gave {times:?}: the earliest events"
    );
    Ok(())
}

async fn aggregates_match_reference(s: Subject) -> CaseResult {
    let ts = s.series()?;
    let stream = s.name("agg");
    let mut x: u64 = 7;
    let events: Vec<Event> = (0..3000)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let host = ["a", "b", "c"][(x >> 20) as usize % 3];
            let region = ["eu", "us"][(x >> 30) as usize % 2];
            event(
                BASE + ((x >> 33) % 60_000) as i64,
                host,
                region,
                ((x >> 40) % 1000) as f64 / 10.0,
            )
        })
        .collect();
    for chunk in events.chunks(500) {
        ts.append(stream.clone(), chunk.to_vec()).await?;
    }
    for function in AggregateFunction::ALL {
        for group_by in [
            vec![],
            vec!["host".to_string()],
            vec!["host".to_string(), "region".to_string()],
        ] {
            let a = Aggregation {
                start_ms: BASE + 1_000,
                end_ms: BASE + 55_000,
                filters: BTreeMap::new(),
                bucket_ms: 10_000,
                metric: "v".into(),
                function,
                group_by: group_by.clone(),
            };
            let rows = ts.aggregate(stream.clone(), a.clone()).await?;
            let expected = super::model::timeseries_reference(&events, &a);
            ensure!(
                rows.len() == expected.len(),
                "{function:?} by {group_by:?}: {} rows, expected {}",
                rows.len(),
                expected.len()
            );
            for row in rows {
                let group: Vec<String> = group_by
                    .iter()
                    .map(|t| row.group.get(t).cloned().unwrap_or_default())
                    .collect();
                let Some((value, count)) = expected.get(&(row.bucket_start_ms, group.clone())) else {
                    anyhow::bail!(
                        "{function:?}: unexpected row bucket {} group {group:?}",
                        row.bucket_start_ms
                    );
                };
                ensure!(
                    row.count == *count,
                    "{function:?} bucket {} {group:?}: count {} vs {count}",
                    row.bucket_start_ms,
                    row.count
                );
                ensure!(
                    (row.value - value).abs() <= 1e-9 * value.abs().max(1.0),
                    "{function:?} bucket {} {group:?}: {} vs reference {value}",
                    row.bucket_start_ms,
                    row.value
                );
            }
        }
    }
    Ok(())
}

/// Columns written by hand as a client in another language would: a dictionary with a
/// value no event uses and values in another order than first use, events lacking a tag
/// or a field (presence bitmap over two bytes), tag columns out of name order, two events
/// at one time. They read back as the events they describe.
async fn columns_append_the_same_events(s: Subject) -> CaseResult {
    let ts = s.series()?;
    let stream = s.name("cols");
    let n = 11;
    let columns = EventColumns {
        timestamps_ms: (0..n).map(|i| BASE + (i as i64 % 7) * 10).collect(),
        tags: vec![
            TagColumn {
                name: "region".into(),
                dictionary: vec!["unused".into(), "us".into(), "eu".into()],
                // 0: no region tag.
                values: (0..n).map(|i| [3, 2, 0][i % 3]).collect(),
            },
            TagColumn {
                name: "host".into(),
                dictionary: vec!["b".into(), "a".into()],
                values: (0..n).map(|i| 1 + (i % 2) as u32).collect(),
            },
        ],
        fields: vec![FieldColumn {
            name: "v".into(),
            values: (0..n).map(|i| i as f64 / 2.0).collect(),
            // Events 3 and 9 lack `v`.
            present: vec![0b1111_0111, 0b0000_0101],
        }],
    };
    let want = columns.clone().into_events();
    ensure!(
        want[3].fields.is_empty() && want[2].tags.len() == 1 && want[0].tags["region"] == "eu",
        "the test's own columns describe what it means: {want:?}"
    );
    let stored = ts.append_columns(stream.clone(), columns).await?;
    ensure!(stored == n as u64, "append_columns of {n} events reported {stored}");
    let got = ts.query(stream, range(BASE, BASE + 100)).await?;
    let mut want = want;
    want.sort_by_key(|e| e.timestamp_ms);
    ensure!(got == want, "read back {got:?}\nexpected {want:?}");
    Ok(())
}

/// Appends of events and of columns interleave in one order: ties of time come back in
/// append order whichever form carried them.
async fn columns_and_events_share_one_append_order(s: Subject) -> CaseResult {
    let ts = s.series()?;
    let stream = s.name("mixed");
    let at = |v: f64| event(BASE + 5, "a", "eu", v);
    ts.append(stream.clone(), vec![at(1.0)]).await?;
    ts.append_columns(stream.clone(), EventColumns::from_events(&[at(2.0), at(3.0)]))
        .await?;
    ts.append(stream.clone(), vec![at(4.0)]).await?;
    ts.append_columns(stream.clone(), EventColumns::from_events(&[at(5.0)]))
        .await?;
    let got = ts.query(stream, range(BASE, BASE + 10)).await?;
    let order: Vec<f64> = got.iter().map(|e| e.fields["v"]).collect();
    ensure!(order == [1.0, 2.0, 3.0, 4.0, 5.0], "append order {order:?}");
    Ok(())
}

/// A value number past its dictionary, a column of another length and a presence bitmap
/// of the wrong size are INVALID_ARGUMENT naming the field, and nothing of them is
/// stored.
async fn malformed_columns_are_refused_naming_the_field(s: Subject) -> CaseResult {
    let ts = s.series()?;
    let stream = s.name("bad");
    let good = EventColumns::from_events(&[event(BASE, "a", "eu", 1.0), event(BASE + 1, "b", "eu", 2.0)]);
    let mut past = good.clone();
    past.tags[0].values[1] = 3;
    let mut short = good.clone();
    short.fields[0].values.pop();
    let mut bitmap = good.clone();
    bitmap.fields[0].present = vec![0b11, 0];
    for (columns, field) in [
        (past, "tags[0].values[1]"),
        (short, "fields[0].values"),
        (bitmap, "fields[0].present"),
    ] {
        match ts.append_columns(stream.clone(), columns).await {
            Err(BackendError::InvalidArgument { field: named, .. }) => {
                ensure!(named == field, "the error must name {field}, named {named:?}")
            }
            other => anyhow::bail!("malformed columns ({field}) must be INVALID_ARGUMENT, got {other:?}"),
        }
    }
    let got = ts.query(stream, range(BASE, BASE + 10)).await?;
    ensure!(got.is_empty(), "refused columns stored {got:?}");
    Ok(())
}

async fn model_random_sequences(s: Subject) -> CaseResult {
    super::model::timeseries(s).await
}
