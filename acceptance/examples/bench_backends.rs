//! Proxy overhead per backend, measured in one run (see ci/bench-backends.sh, which
//! records the output in reports/baseline/backends.md).
//!
//! For redis, postgres and nats (key-value get and set): the same load, first a moderate
//! rate (`--rate`, open model), then one request at a time, then saturation (`--concurrency` closed-loop workers),
//! `--duration` per phase, sent
//! - `direct`: by the client crate itself (redis: the `redis` crate with raw GET/SET),
//!   or, where the driver *is* the crate plus naming, by the proxy's driver in-process;
//! - `proxy`: through a proxy on a real gRPC socket, with the same driver behind it.
//!
//! memstore is the floor: the proxy's own cost (gRPC hop, routing) with no backend.
//!
//! ClickHouse ingestion has its own benchmark, `bench_ingest`.
//!
//! Servers are started as processes on free ports (binaries from ci/install-servers.sh).

#[path = "common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use acceptance::provision::{ServerSpec, process, specs};
use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use prism_proxy::Interface;
use prism_proxy::backends::Backend;
use prism_proxy::backends::nats::NatsConfig;
use prism_proxy::backends::postgres::PostgresConfig;
use prism_proxy::backends::redis::RedisConfig;
use prism_proxy::config::BackendConfig;

use common::{ProxyRuntime, Usage, pid_of, proxy_for, usage};

#[derive(Parser)]
#[command(about = "Proxy overhead per backend: direct client vs through the proxy, same run")]
struct Args {
    /// Length of each measured phase.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Requests per second of the moderate-load phase (open model: latency counts from
    /// each request's intended send time).
    #[arg(long, default_value_t = 2_000)]
    rate: u64,
    /// Concurrent closed-loop workers of the throughput phase: enough that the CPUs, not
    /// round trips, bound it (8 left both processes waiting on each other).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    #[command(flatten)]
    proxy: ProxyRuntime,
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_value = "memstore,redis,postgres,nats")]
    backends: Vec<String>,
}

/// Latency (us) and count of one phase, and what the processes used meanwhile.
struct Phase {
    hist: Histogram<u64>,
    elapsed: Duration,
    errors: u64,
    /// The generator's, the proxy's and the backend server's.
    usage: [Usage; 3],
}

/// The processes whose usage each phase records.
struct Pids {
    proxy: u32,
    server: Option<u32>,
}

impl Pids {
    fn usage(&self) -> [Usage; 3] {
        [
            usage(std::process::id(), false),
            usage(self.proxy, false),
            self.server.map(|pid| usage(pid, true)).unwrap_or_default(),
        ]
    }

    /// `phase` run, with the usage of the processes while it ran.
    async fn measure(&self, phase: impl std::future::Future<Output = Phase>) -> Phase {
        let before = self.usage();
        let mut phase = phase.await;
        let after = self.usage();
        phase.usage = [0, 1, 2].map(|i| after[i] - before[i]);
        phase
    }
}

impl Phase {
    /// Where each request's CPU and wake-ups went: per process, CPU microseconds and
    /// times a thread waited (`voluntary_ctxt_switches`: each is a wake-up) per request.
    fn usage_row(&self, backend: &str, op: &str, path: &str) -> String {
        let n = (self.hist.len() + self.errors).max(1) as f64;
        let [g, p, s] = self.usage;
        format!(
            "| {backend} | {op} | {path} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} |",
            g.cpu * 1e6 / n,
            p.cpu * 1e6 / n,
            s.cpu * 1e6 / n,
            g.waits as f64 / n,
            p.waits as f64 / n,
            s.waits as f64 / n,
            (g.preempted + p.preempted + s.preempted) as f64 / n,
        )
    }

    fn row(&self, backend: &str, op: &str, path: &str) -> String {
        let ops = self.hist.len() as f64 / self.elapsed.as_secs_f64();
        format!(
            "| {backend} | {op} | {path} | {:.0} | {} | {} | {} | {} | {} |",
            ops,
            self.hist.value_at_quantile(0.5),
            self.hist.value_at_quantile(0.9),
            self.hist.value_at_quantile(0.99),
            self.hist.max(),
            self.errors
        )
    }
}

type Op = Arc<dyn Fn(u64) -> futures::future::BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// Runs `op` from `concurrency` workers for `duration`, recording each call's latency.
async fn closed_loop(op: Op, concurrency: usize, duration: Duration) -> Phase {
    let start = Instant::now();
    let mut workers = Vec::new();
    for w in 0..concurrency {
        let op = op.clone();
        workers.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut errors = 0;
            let mut i = w as u64;
            while start.elapsed() < duration {
                let t = Instant::now();
                match op(i).await {
                    Ok(()) => hist.saturating_record(t.elapsed().as_micros() as u64),
                    Err(_) => errors += 1,
                }
                i += concurrency as u64;
            }
            (hist, errors)
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut errors = 0;
    for w in workers {
        let (h, e) = w.await.expect("worker");
        hist.add(h).expect("same bounds");
        errors += e;
    }
    Phase {
        hist,
        elapsed: start.elapsed(),
        errors,
        usage: Default::default(),
    }
}

/// Sends `rate` requests per second for `duration` and records each one's latency from
/// its actual send. (Tokio's timer wakes up to 1 ms late, so latency from the intended
/// time would measure the pacing here, not the proxy; loadtest paces precisely.)
async fn open_loop(op: Op, rate: u64, duration: Duration) -> Phase {
    let start = tokio::time::Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let total = (duration.as_secs_f64() * rate as f64) as u64;
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let intended = start + interval * i as u32;
        tokio::time::sleep_until(intended).await;
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let result = op(i).await;
            (result.is_ok(), sent.elapsed())
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut errors = 0;
    for t in tasks {
        let (ok, latency) = t.await.expect("request task");
        if ok {
            hist.saturating_record(latency.as_micros() as u64);
        } else {
            errors += 1;
        }
    }
    Phase {
        hist,
        elapsed: start.elapsed(),
        errors,
        usage: Default::default(),
    }
}

/// The two rows of one comparison plus the difference, and their usage rows.
fn compare(tables: &mut Tables, name: &str, op: &str, direct_label: &str, d: &Phase, p: &Phase) {
    tables.usage.push(d.usage_row(name, op, direct_label));
    tables.usage.push(p.usage_row(name, op, "proxy"));
    let rows = &mut tables.latency;
    let rate = |x: &Phase| x.hist.len() as f64 / x.elapsed.as_secs_f64();
    let q = |x: &Phase, q: f64| x.hist.value_at_quantile(q) as i64;
    rows.push(d.row(name, op, direct_label));
    rows.push(p.row(name, op, "proxy"));
    rows.push(format!(
        "| {name} | {op} | **added by the proxy** | ratio {:.2} | {:+} | {:+} | {:+} | | |",
        rate(p) / rate(d),
        q(p, 0.5) - q(d, 0.5),
        q(p, 0.9) - q(d, 0.9),
        q(p, 0.99) - q(d, 0.99),
    ));
}

const KEYS: u64 = 10_000;

fn key(i: u64) -> Bytes {
    Bytes::from(format!("bench:{:05}", i % KEYS))
}

fn value() -> Bytes {
    Bytes::from(vec![b'x'; 128])
}

fn kv_get(backend: &Backend) -> Op {
    let kv = backend.keyvalue_basic.clone().expect("keyvalue_basic");
    Arc::new(move |i| {
        let kv = kv.clone();
        Box::pin(async move { kv.get(key(i)).await.map(|_| ()).map_err(Into::into) })
    })
}

fn kv_set(backend: &Backend) -> Op {
    let kv = backend.keyvalue_basic.clone().expect("keyvalue_basic");
    Arc::new(move |i| {
        let kv = kv.clone();
        Box::pin(async move { kv.set(key(i), value()).await.map_err(Into::into) })
    })
}

async fn kv_overhead(
    args: &Args,
    name: &str,
    spec: Option<&'static ServerSpec>,
    config: fn(&str) -> BackendConfig,
    proxy_yaml: fn(&str) -> String,
    [moderate, sequential, saturated]: &mut [Tables; 3],
) -> anyhow::Result<()> {
    let instance = match spec {
        Some(spec) => Some(process::start(spec).await.with_context(|| format!("starting {name}"))?),
        None => None,
    };
    let url = instance.as_ref().and_then(|i| i.url.clone()).unwrap_or_default();
    let direct = config(&url).connect().await?;
    let (proxy, through) = proxy_for(&args.proxy, &proxy_yaml(&url), None, &[Interface::KeyvalueBasic]).await?;
    let pids = Pids {
        proxy: proxy.pid(),
        server: match instance.as_ref().and_then(|i| i.addr) {
            Some(addr) => Some(
                pid_of(&[spec.map_or("", |s| s.binary), &addr.port().to_string()])
                    .with_context(|| format!("finding {name}'s pid"))?,
            ),
            None => None,
        },
    };
    // Every key exists before the gets.
    for i in 0..KEYS {
        direct
            .keyvalue_basic
            .as_ref()
            .context("kv")?
            .set(key(i), value())
            .await?;
    }
    let (direct_label, raw) = if name == "redis" {
        let client = redis::Client::open(url.as_str())?;
        let conn = client.get_connection_manager().await?;
        let get: Op = {
            let conn = conn.clone();
            Arc::new(move |i| {
                let mut conn = conn.clone();
                Box::pin(async move {
                    let _: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(format!("bench:k:bench:{:05}", i % KEYS))
                        .query_async(&mut conn)
                        .await?;
                    Ok(())
                })
            })
        };
        let set: Op = Arc::new(move |i| {
            let mut conn = conn.clone();
            Box::pin(async move {
                let _: () = redis::cmd("SET")
                    .arg(format!("bench:k:bench:{:05}", i % KEYS))
                    .arg(vec![b'x'; 128])
                    .query_async(&mut conn)
                    .await?;
                Ok(())
            })
        });
        ("direct (redis crate)", Some((get, set)))
    } else {
        ("direct (driver in-process)", None)
    };
    let (direct_get, direct_set) = raw.unwrap_or_else(|| (kv_get(&direct), kv_set(&direct)));
    for (op, direct_op, proxy_op) in [
        ("get", direct_get, kv_get(&through)),
        ("set", direct_set, kv_set(&through)),
    ] {
        eprintln!(
            "bench: {name} {op}: {}/s open model, direct then proxy ({:?} each)",
            args.rate, args.duration
        );
        let d = pids
            .measure(open_loop(direct_op.clone(), args.rate, args.duration))
            .await;
        let p = pids
            .measure(open_loop(proxy_op.clone(), args.rate, args.duration))
            .await;
        compare(moderate, name, &format!("{op} @ {}/s", args.rate), direct_label, &d, &p);
        eprintln!("bench: {name} {op}: one request at a time, direct then proxy");
        let d = pids.measure(closed_loop(direct_op.clone(), 1, args.duration)).await;
        let p = pids.measure(closed_loop(proxy_op.clone(), 1, args.duration)).await;
        compare(sequential, name, &format!("{op} x1"), direct_label, &d, &p);
        eprintln!(
            "bench: {name} {op}: {} closed-loop workers, direct then proxy",
            args.concurrency
        );
        let d = pids
            .measure(closed_loop(direct_op, args.concurrency, args.duration))
            .await;
        let p = pids
            .measure(closed_loop(proxy_op, args.concurrency, args.duration))
            .await;
        compare(
            saturated,
            name,
            &format!("{op} x{}", args.concurrency),
            direct_label,
            &d,
            &p,
        );
    }
    drop(proxy);
    drop(instance);
    Ok(())
}

/// The rows of one load shape: latency, and where the CPU and wake-ups went.
struct Tables {
    latency: Vec<String>,
    usage: Vec<String>,
}

impl Tables {
    fn new() -> Tables {
        Tables {
            latency: vec![
                "| backend | op | path | ops/s | p50 us | p90 us | p99 us | max us | errors |".into(),
                "|---|---|---|---|---|---|---|---|---|".into(),
            ],
            usage: vec![
                "| backend | op | path | CPU us/req generator | proxy | server | waits/req generator | proxy | server | preempted/req |".into(),
                "|---|---|---|---|---|---|---|---|---|---|".into(),
            ],
        }
    }

    fn print(&self, title: &str) {
        println!("### {title}\n\n{}\n", self.latency.join("\n"));
        println!(
            "CPU and waits (each a wake-up) per request, per process:\n\n{}\n",
            self.usage.join("\n")
        );
    }
}

// One thread: the generator adds no cross-thread wakeups of its own to what it measures.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut tables = [Tables::new(), Tables::new(), Tables::new()];
    for backend in &args.backends {
        match backend.as_str() {
            "memstore" => {
                kv_overhead(
                    &args,
                    "memstore",
                    None,
                    |_| BackendConfig::memstore(),
                    |_| "{ type: memstore }".into(),
                    &mut tables,
                )
                .await?
            }
            "redis" => {
                kv_overhead(
                    &args,
                    "redis",
                    Some(&specs::REDIS),
                    |url| {
                        BackendConfig::Redis(RedisConfig {
                            url: url.into(),
                            prefix: "bench:".into(),
                            timeout: Duration::from_secs(5),
                        })
                    },
                    |url| format!("{{ type: redis, url: '{url}', prefix: 'bench:' }}"),
                    &mut tables,
                )
                .await?
            }
            "postgres" => {
                kv_overhead(
                    &args,
                    "postgres",
                    Some(&specs::POSTGRES),
                    |url| {
                        BackendConfig::Postgres(PostgresConfig {
                            url: url.into(),
                            prefix: "bench:".into(),
                            timeout: Duration::from_secs(5),
                            pool_size: 16,
                        })
                    },
                    |url| format!("{{ type: postgres, url: '{url}', prefix: 'bench:' }}"),
                    &mut tables,
                )
                .await?
            }
            "nats" => {
                kv_overhead(
                    &args,
                    "nats",
                    Some(&specs::NATS),
                    |url| {
                        BackendConfig::Nats(NatsConfig {
                            prefix: "bench".into(),
                            timeout: Duration::from_secs(5),
                            ..NatsConfig::new(url)
                        })
                    },
                    |url| format!("{{ type: nats, url: '{url}', prefix: bench }}"),
                    &mut tables,
                )
                .await?
            }
            other => anyhow::bail!("--backends: unknown backend {other:?} (memstore, redis, postgres, nats)"),
        }
    }
    let [moderate, sequential, saturated] = &tables;
    println!("# proxy runtime: {}\n", args.proxy.describe());
    moderate.print(&format!("Moderate load (open model, {}/s)", args.rate));
    sequential.print("One request at a time (closed loop, 1 worker)");
    saturated.print(&format!("Saturated ({} closed-loop workers)", args.concurrency));
    Ok(())
}
