//! ClickHouse ingestion through the proxy vs direct inserts with the same crate, in one
//! run (ci/bench-ingest.sh; numbers in reports/baseline/backends.md).
//!
//! The same events (a time, tags `host` of 16 values and `region`, field `v`) go into
//! ClickHouse's `prism_events` three ways, alternating each round:
//! - `direct`: the `clickhouse` crate from this process, INSERTs of `--insert-rows` rows,
//!   `--concurrent-inserts` at once, rows borrowed (no allocation per row): the fastest
//!   use of the crate, as a client in Rust would write it;
//! - `columns`: through a `prism-proxy` process, `AppendColumns` calls of
//!   `--append-batch` events from `--callers` concurrent callers; the driver batches
//!   them into INSERTs of `--insert-rows` rows (its `batch_rows`), as many at once;
//! - `events`: the same through `Append` (events with tag and field maps).
//!
//! Requests are built before each phase starts: the rate is the path's, not the
//! generation of test data. ClickHouse merges the parts of earlier inserts in the
//! background, so each phase starts once `system.merges` is empty, and the CPU each
//! process used during a phase (this generator, the proxy, clickhouse-server; from
//! /proc) is reported per million events beside the rate.

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use acceptance::provision::{process, specs};
use anyhow::Context;
use clap::Parser;
use prism_proxy::Interface;
use prism_proxy::interfaces::{Event, EventColumns, TimeSeriesBasic};

use common::{ProxyRuntime, cpu_seconds, pid_of, proxy_for};

#[derive(Parser)]
#[command(about = "ClickHouse ingestion: direct inserts vs appends through the proxy, same run")]
struct Args {
    /// Events per phase.
    #[arg(long, default_value_t = 2_000_000)]
    events: usize,
    /// Events per append call through the proxy.
    #[arg(long, default_value_t = 1_000)]
    append_batch: usize,
    /// Rows per INSERT, direct and in the proxy's driver (`batch_rows`).
    #[arg(long, default_value_t = 10_000)]
    insert_rows: usize,
    /// INSERTs in flight at once, direct and in the driver (`concurrent_inserts`).
    #[arg(long, default_value_t = 2)]
    concurrent_inserts: usize,
    /// Concurrent append callers through the proxy.
    #[arg(long, default_value_t = 8)]
    callers: usize,
    /// Rounds; the order of the three paths rotates each round.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Leave out the `Append` (events) path.
    #[arg(long)]
    no_events: bool,
    #[command(flatten)]
    proxy: ProxyRuntime,
}

const BASE: i64 = 1_700_000_000_000;
const HOSTS: [&str; 16] = [
    "h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "h10", "h11", "h12", "h13", "h14", "h15",
];

fn event(i: usize) -> Event {
    Event {
        timestamp_ms: BASE + i as i64,
        tags: [
            ("host".to_string(), HOSTS[i % 16].to_string()),
            ("region".to_string(), "eu".to_string()),
        ]
        .into(),
        fields: [("v".to_string(), (i % 1000) as f64)].into(),
    }
}

/// A row of `prism_events`, borrowed.
#[derive(clickhouse::Row, serde::Serialize)]
struct DirectRow<'a> {
    stream: &'a str,
    ts: i64,
    seq: u64,
    tag_keys: &'a [&'a str],
    tag_values: &'a [&'a str],
    field_keys: &'a [&'a str],
    field_values: &'a [f64],
}

/// Where a phase's time and CPU went.
struct Measured {
    events: usize,
    seconds: f64,
    /// CPU seconds of the generator, the proxy, ClickHouse.
    cpu: [f64; 3],
}

impl Measured {
    fn rate(&self) -> f64 {
        self.events as f64 / self.seconds
    }
    fn cpu_per_million(&self, i: usize) -> f64 {
        self.cpu[i] * 1e6 / self.events as f64
    }
}

struct Pids {
    proxy: u32,
    clickhouse: u32,
}

impl Pids {
    fn cpu(&self) -> [f64; 3] {
        [
            cpu_seconds(std::process::id()),
            cpu_seconds(self.proxy),
            cpu_seconds(self.clickhouse),
        ]
    }
}

async fn measure<F: std::future::Future<Output = anyhow::Result<()>>>(
    pids: &Pids,
    events: usize,
    phase: F,
) -> anyhow::Result<Measured> {
    let (before, start) = (pids.cpu(), Instant::now());
    phase.await?;
    let (seconds, after) = (start.elapsed().as_secs_f64(), pids.cpu());
    Ok(Measured {
        events,
        seconds,
        cpu: [0, 1, 2].map(|i| after[i] - before[i]),
    })
}

/// Waits (up to a minute) until ClickHouse merges nothing, so a phase does not pay for
/// the merges of the one before.
async fn settle(client: &clickhouse::Client) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let merging: u64 = client.query("SELECT count() FROM system.merges").fetch_one().await?;
        if merging == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("bench: merges still running after 60 s; measuring anyway");
    Ok(())
}

async fn direct(client: &clickhouse::Client, stream: &str, args: &Args) -> anyhow::Result<()> {
    let mut inserting = tokio::task::JoinSet::new();
    for first in (0..args.events).step_by(args.insert_rows) {
        while inserting.len() >= args.concurrent_inserts {
            inserting.join_next().await.context("insert task")???;
        }
        let (client, stream) = (client.clone(), stream.to_string());
        let rows = first..(first + args.insert_rows).min(args.events);
        inserting.spawn(async move { insert_rows(&client, &stream, rows).await });
    }
    while let Some(done) = inserting.join_next().await {
        done??;
    }
    Ok(())
}

/// One INSERT of the events numbered `rows`.
async fn insert_rows(client: &clickhouse::Client, stream: &str, rows: std::ops::Range<usize>) -> anyhow::Result<()> {
    let (tag_keys, field_keys) = (["host", "region"], ["v"]);
    let mut insert = client.insert::<DirectRow<'static>>("prism_events").await?;
    for j in rows {
        let tag_values = [HOSTS[j % 16], "eu"];
        let field_values = [(j % 1000) as f64];
        insert
            .write(&DirectRow {
                stream,
                ts: BASE + j as i64,
                seq: j as u64,
                tag_keys: &tag_keys,
                tag_values: &tag_values,
                field_keys: &field_keys,
                field_values: &field_values,
            })
            .await?;
    }
    insert.end().await?;
    Ok(())
}

/// Sends `calls` (built beforehand) from `callers` concurrent tasks.
async fn through<T: Send + 'static>(
    series: &Arc<dyn TimeSeriesBasic>,
    callers: usize,
    calls: Vec<T>,
    send: fn(Arc<dyn TimeSeriesBasic>, T) -> futures::future::BoxFuture<'static, anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let mut queues: Vec<Vec<T>> = (0..callers).map(|_| Vec::new()).collect();
    for (i, call) in calls.into_iter().enumerate() {
        queues[i % callers].push(call);
    }
    let tasks: Vec<_> = queues
        .into_iter()
        .map(|queue| {
            let series = series.clone();
            tokio::spawn(async move {
                for call in queue {
                    send(series.clone(), call).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

// One thread: the generator adds no cross-thread wakeups of its own to what it measures.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.events >= args.append_batch
            && args.append_batch > 0
            && args.insert_rows > 0
            && args.callers > 0
            && args.concurrent_inserts > 0,
        "--events must hold at least one --append-batch; batches and callers must be positive"
    );
    let instance = process::start(&specs::CLICKHOUSE)
        .await
        .context("starting clickhouse")?;
    let addr = instance.addr.context("clickhouse address")?;
    let url = instance.url.clone().context("url")?;
    let clickhouse_pid =
        pid_of(&[&format!("--http_port={}", addr.port())]).context("finding clickhouse-server's pid")?;
    // flush_interval 1s: a batch is written when it is full, as direct INSERTs are (at the
    // default 20 ms, 2M events/s flushed 40k-row batches: twice the INSERTs, each with
    // ClickHouse's fixed cost).
    let backend = format!(
        "{{ type: clickhouse, url: '{url}', batch_rows: {}, buffer_rows: {}, concurrent_inserts: {}, flush_interval: 1s }}",
        args.insert_rows,
        (args.insert_rows * 4).max(100_000),
        args.concurrent_inserts
    );
    let limits = format!("{{ max_batch_entries: {} }}", args.append_batch.max(1000));
    let (proxy, backend) = proxy_for(&args.proxy, &backend, Some(&limits), &[Interface::TimeseriesBasic]).await?;
    let pids = Pids {
        proxy: proxy.pid(),
        clickhouse: clickhouse_pid,
    };
    let series = backend.timeseries_basic.clone().context("timeseries")?;
    // The proxy makes the table; direct inserts go to the same table, other streams.
    series.append("warmup".into(), vec![event(0)]).await?;
    let client = clickhouse::Client::default().with_url(&url).with_validation(false);

    let paths: Vec<&str> = if args.no_events {
        vec!["direct", "columns"]
    } else {
        vec!["direct", "columns", "events"]
    };
    println!(
        "# bench_ingest: {} events per phase, {} per append, {} callers, {}-row INSERTs ({} at once), proxy {}",
        args.events,
        args.append_batch,
        args.callers,
        args.insert_rows,
        args.concurrent_inserts,
        args.proxy.describe()
    );
    println!("| round | path | events/s | CPU s per 1M events: generator | proxy | clickhouse |");
    println!("|---|---|---|---|---|---|");
    let mut rates: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for round in 1..=args.rounds {
        for k in 0..paths.len() {
            let path = paths[(k + round - 1) % paths.len()];
            let stream = format!("{path}-{round}");
            let calls = args.events / args.append_batch;
            settle(&client).await?;
            eprintln!("bench: round {round}: {path}");
            let measured = match path {
                "direct" => measure(&pids, args.events, direct(&client, &stream, &args)).await?,
                "columns" => {
                    let requests: Vec<(String, EventColumns)> = (0..calls)
                        .map(|c| {
                            let events: Vec<Event> = (c * args.append_batch..(c + 1) * args.append_batch)
                                .map(event)
                                .collect();
                            (stream.clone(), EventColumns::from_events(&events))
                        })
                        .collect();
                    let send = |series: Arc<dyn TimeSeriesBasic>, (stream, columns): (String, EventColumns)| {
                        Box::pin(async move {
                            series.append_columns(stream, columns).await?;
                            anyhow::Ok(())
                        }) as futures::future::BoxFuture<'static, _>
                    };
                    let events = calls * args.append_batch;
                    measure(&pids, events, through(&series, args.callers, requests, send)).await?
                }
                _ => {
                    let requests: Vec<(String, Vec<Event>)> = (0..calls)
                        .map(|c| {
                            let events = (c * args.append_batch..(c + 1) * args.append_batch)
                                .map(event)
                                .collect();
                            (stream.clone(), events)
                        })
                        .collect();
                    let send = |series: Arc<dyn TimeSeriesBasic>, (stream, events): (String, Vec<Event>)| {
                        Box::pin(async move {
                            series.append(stream, events).await?;
                            anyhow::Ok(())
                        }) as futures::future::BoxFuture<'static, _>
                    };
                    let events = calls * args.append_batch;
                    measure(&pids, events, through(&series, args.callers, requests, send)).await?
                }
            };
            println!(
                "| {round} | {path} | {:.0} | {:.2} | {:.2} | {:.2} |",
                measured.rate(),
                measured.cpu_per_million(0),
                measured.cpu_per_million(1),
                measured.cpu_per_million(2)
            );
            rates.entry(path).or_default().push(measured.rate());
        }
    }
    let direct_median = median(rates["direct"].clone());
    println!();
    for (path, r) in &rates {
        let m = median(r.clone());
        println!(
            "median {path}: {m:.0} events/s ({:.2} of direct); rounds {:?}",
            m / direct_median,
            r.iter().map(|x| x.round()).collect::<Vec<_>>()
        );
    }
    let written: u64 = client
        .query("SELECT count() FROM prism_events WHERE stream != 'warmup'")
        .fetch_one()
        .await?;
    let expected =
        args.rounds * (args.events + (args.events / args.append_batch) * args.append_batch * (paths.len() - 1));
    anyhow::ensure!(
        written as usize == expected,
        "ClickHouse holds {written} events, {expected} were sent"
    );
    println!("every event stored: {written}");
    drop(proxy);
    Ok(())
}
