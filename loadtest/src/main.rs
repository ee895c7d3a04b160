//! `loadtest`: YAML load scenarios against Prism, with CI thresholds.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use loadtest::engine::{Engine, Progress};
use loadtest::report::{RunReport, fmt_us};
use loadtest::scenario::{Scenario, Target};
use loadtest::shard::Shard;
use loadtest::stats::Stats;
use prism_proxy::client::PrismClient;
use prism_proxy::config::{BackendConfig, Config, NamespaceConfig};

/// Replays YAML load scenarios against a Prism endpoint and reports latency histograms
/// corrected for coordinated omission.
///
/// Exit codes: 0 the run passed its thresholds, 2 a threshold failed, 1 an error (bad
/// scenario, unreachable target).
#[derive(Parser)]
#[command(
    version,
    about,
    long_about,
    after_help = "Examples:\n  loadtest run scenarios/quickstart.yaml\n  loadtest run scenarios/kv-read-heavy.yaml --set target.endpoint=http://127.0.0.1:50051\n  loadtest compare reports/runs/a/run.json reports/runs/b/run.json --tolerance 10%"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and write run.json, latency.hlog and report.html to the output folder.
    ///
    /// With no `target` in the scenario, the proxy with memstore is started in-process
    /// (it then shares the machine's cores with the generator).
    Run {
        /// The scenario file (see loadtest/README.md and scenarios/).
        scenario: PathBuf,
        /// Output folder; default reports/runs/<name>-<unix time>.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// No live progress, only the final table.
        #[arg(long)]
        quiet: bool,
        /// Override a scenario value, e.g. `--set load.stages[0].rate=2000` or
        /// `--set target.endpoint=http://10.0.0.5:50051`; repeatable.
        #[arg(long = "set", value_name = "PATH=VALUE")]
        sets: Vec<String>,
        /// Run shard i of N (0-based): 1/N of the rate or clients, on 1/N of each
        /// keyspace. Merge the N outputs with `loadtest merge`.
        #[arg(long, value_name = "i/N")]
        shard: Option<Shard>,
    },
    /// Merge the runs of N shards into one report (exact: histograms are added).
    Merge {
        /// run.json of each shard (latency.hlog must sit beside each).
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Check scenario files and report every problem found, without running anything.
    Validate {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Print the JSON Schema of scenario files (for editors; shipped as
    /// loadtest/scenario.schema.json).
    Schema,
    /// Print a finished run's table and (re)write its HTML report.
    Report {
        /// A run.json written by `loadtest run`.
        run: PathBuf,
        /// Where to write the HTML; default report.html beside run.json.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Compare two runs per operation (p50, p90, p99, p99.9); exit 2 if NEW is slower
    /// than BASE by more than the tolerance on any of them.
    Compare {
        base: PathBuf,
        new: PathBuf,
        /// Allowed slowdown, e.g. `10%`.
        #[arg(long, default_value = "10%", value_parser = parse_percent)]
        tolerance: f64,
    },
}

fn parse_percent(s: &str) -> Result<f64, String> {
    let n = s.strip_suffix('%').unwrap_or(s);
    n.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v / 100.0)
        .ok_or_else(|| format!("{s:?} is not a percentage such as 10%"))
}

fn load_run(path: &Path) -> anyhow::Result<RunReport> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{} is not a run.json written by loadtest", path.display()))
}

fn report(run: &Path, html: Option<PathBuf>) -> anyhow::Result<bool> {
    let report = load_run(run)?;
    print!("{}", report.table());
    let html = html.unwrap_or_else(|| run.with_file_name("report.html"));
    std::fs::write(&html, loadtest::html::render(&report)).with_context(|| format!("writing {}", html.display()))?;
    println!("html: {}", html.display());
    Ok(report.passed)
}

fn compare(base: &Path, new: &Path, tolerance: f64) -> anyhow::Result<bool> {
    let (base, new) = (load_run(base)?, load_run(new)?);
    let mut ok = true;
    println!(
        "{:<20} {:<6} {:>10} {:>10} {:>9}  (tolerance +{:.0}%)",
        "operation",
        "",
        "base",
        "new",
        "change",
        tolerance * 100.0
    );
    for n in new.rows() {
        let Some(b) = base.rows().find(|b| b.operation == n.operation) else {
            println!("{:<20} only in the new run", n.operation);
            continue;
        };
        for (label, bv, nv) in [
            ("p50", b.latency.p50_us, n.latency.p50_us),
            ("p90", b.latency.p90_us, n.latency.p90_us),
            ("p99", b.latency.p99_us, n.latency.p99_us),
            ("p99.9", b.latency.p99_9_us, n.latency.p99_9_us),
        ] {
            let change = (nv as f64 - bv as f64) / (bv as f64).max(1.0);
            let worse = change > tolerance;
            ok &= !worse;
            println!(
                "{:<20} {:<6} {:>10} {:>10} {:>+8.1}%{}",
                n.operation,
                label,
                fmt_us(bv as f64),
                fmt_us(nv as f64),
                change * 100.0,
                if worse { "  REGRESSION" } else { "" }
            );
        }
    }
    println!(
        "{}",
        if ok {
            "no regression beyond the tolerance"
        } else {
            "FAILED: regression beyond the tolerance"
        }
    );
    Ok(ok)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { scenarios } => {
            let mut ok = true;
            for path in scenarios {
                match Scenario::load(&path) {
                    Ok(s) => println!("{}: ok ({}, {:?})", path.display(), s.name, s.duration()),
                    Err(e) => {
                        ok = false;
                        eprintln!("{e:#}");
                    }
                }
            }
            if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Command::Schema => {
            print!("{}", Scenario::json_schema());
            ExitCode::SUCCESS
        }
        Command::Report { run, html } => verdict(report(&run, html)),
        Command::Compare { base, new, tolerance } => verdict(compare(&base, &new, tolerance)),
        Command::Merge { runs, out } => verdict(merge(&runs, &out)),
        Command::Run {
            scenario,
            out,
            quiet,
            shard,
            sets,
        } => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            verdict(runtime.block_on(run(&scenario, &sets, out, quiet, shard)))
        }
    }
}

fn merge(runs: &[PathBuf], out: &Path) -> anyhow::Result<bool> {
    let (report, stats, op_names) = loadtest::merge::merge(runs)?;
    print!("{}", report.table());
    report
        .write(out, &stats, &op_names)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("merged {} runs into {}", report.merged_runs, out.display());
    Ok(report.passed)
}

async fn run(
    path: &Path,
    sets: &[String],
    out: Option<PathBuf>,
    quiet: bool,
    shard: Option<Shard>,
) -> anyhow::Result<bool> {
    let scenario = Scenario::load(path)?.with_overrides(sets, path)?;
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let (endpoint, namespace, channels, timeout, _proxy) = match &scenario.target {
        Some(Target::Remote(r)) => (
            r.endpoint.clone(),
            r.namespace.clone(),
            r.channels.max(1),
            r.timeout,
            None,
        ),
        None | Some(Target::Named(_)) => {
            let config = Config::ephemeral([("default".to_string(), NamespaceConfig::new(BackendConfig::Memstore))]);
            let proxy = prism_proxy::server::start(&config)
                .await
                .context("starting the embedded proxy")?;
            let endpoint = format!("http://{}", proxy.grpc_addr);
            (endpoint, "default".to_string(), 4, Duration::from_secs(5), Some(proxy))
        }
    };
    let target = if _proxy.is_some() {
        format!("embedded proxy (memstore) at {endpoint}")
    } else {
        endpoint.clone()
    };
    let mut metadata: Vec<(String, String)> = Vec::new();
    let mut tls = prism_proxy::client::ClientTls::default();
    if let Some(Target::Remote(r)) = &scenario.target {
        tls = r.tls().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        metadata.extend(r.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(auth) = &r.auth {
            let token = auth.token().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            metadata.push(("authorization".into(), format!("Bearer {token}")));
        }
    }
    let mut clients = Vec::new();
    for _ in 0..channels {
        // Plain http: one HTTP/2 connection driven directly, without tonic's request
        // buffer task (about a task hop per request less; see PrismClient::connect_direct).
        let connected = if endpoint.starts_with("http://") {
            PrismClient::connect_direct(&endpoint, &namespace).await
        } else {
            PrismClient::connect_with(&endpoint, &namespace, &tls).await
        };
        let mut client = connected
            .with_context(|| format!("connecting to {endpoint}"))?
            .with_timeout(timeout);
        for (key, value) in &metadata {
            client = client.with_metadata(key, value)?;
        }
        clients.push(client);
    }
    let op_names = scenario.reported_operations();
    let engine = Engine {
        clients,
        shard: shard.unwrap_or(Shard::WHOLE),
        stats: Arc::new(Mutex::new(Stats::new(op_names.len()))),
        progress: Arc::new(Mutex::new(Progress::default())),
    };
    eprintln!(
        "loadtest: {} against {target}: {:?} ({:?} warm-up)",
        scenario.name,
        scenario.duration(),
        scenario.warmup()
    );
    let printer = (!quiet).then(|| {
        tokio::spawn(show_progress(
            engine.stats.clone(),
            engine.progress.clone(),
            scenario.duration(),
        ))
    });
    // http.* operations run on goose beside the engine, into the same stats.
    let (grpc_part, http_part) = loadtest::http::split(&scenario);
    let http = match http_part {
        Some(part) => {
            let base = match &scenario.target {
                Some(Target::Remote(r)) => r.http_endpoint.clone(),
                _ => _proxy.as_ref().map(|p| format!("http://{}", p.admin_addr)),
            }
            .context("http.* operations need target.http_endpoint")?;
            let part = shard.unwrap_or(Shard::WHOLE).apply(&part);
            let stats = engine.stats.clone();
            let start = tokio::time::Instant::now();
            Some(tokio::spawn(async move {
                loadtest::http::run(part, &base, stats, start).await
            }))
        }
        None => None,
    };
    engine.run(grpc_part.as_ref().unwrap_or(&scenario)).await?;
    if let Some(http) = http {
        http.await.context("the goose task")??;
    }
    if let Some(p) = printer {
        p.abort();
    }
    if std::io::stderr().is_terminal() && !quiet {
        eprintln!();
    }
    let stats = engine
        .stats
        .lock()
        .map_err(|_| anyhow::anyhow!("stats lock poisoned"))?;
    let report = RunReport::build(&scenario, shard, target, &op_names, &stats, started_unix_ms);
    print!("{}", report.table());
    let dir = out.unwrap_or_else(|| {
        let suffix = shard
            .map(|s| format!("-shard{}of{}", s.index, s.count))
            .unwrap_or_default();
        PathBuf::from("reports/runs").join(format!(
            "{}-{}{suffix}",
            sanitize(&scenario.name),
            started_unix_ms / 1000
        ))
    });
    report
        .write(&dir, &stats, &op_names)
        .with_context(|| format!("writing results to {}", dir.display()))?;
    println!(
        "results: {0}/run.json, {0}/latency.hlog, {0}/report.html",
        dir.display()
    );
    println!(
        "{}",
        if report.passed {
            "PASSED"
        } else {
            "FAILED: a threshold was not met"
        }
    );
    Ok(report.passed)
}

/// 0 passed, 2 failed a check, 1 error.
fn verdict(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect()
}

/// Once a second: a redrawn line on a terminal, a plain line every 5 s otherwise.
async fn show_progress(stats: Arc<Mutex<Stats>>, progress: Arc<Mutex<Progress>>, total: Duration) {
    let terminal = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_completed = 0u64;
    let mut n = 0u64;
    loop {
        tick.tick().await;
        n += 1;
        let (elapsed, target) = match progress.lock() {
            Ok(p) => (p.elapsed, p.target_rate),
            Err(_) => return,
        };
        let (completed, errors, p99) = match stats.lock() {
            Ok(s) => {
                let (_, count, errors) = s.total();
                (count, errors, s.current_p99())
            }
            Err(_) => return,
        };
        let rate = completed.saturating_sub(last_completed);
        last_completed = completed;
        let width = 30usize;
        let done = ((elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9)) * width as f64).min(width as f64) as usize;
        let line = format!(
            "[{}{}] {:>5.1}s/{:.0}s target {:>8.0}/s achieved {:>8}/s errors {:>6} p99 {:>8}",
            "#".repeat(done),
            "-".repeat(width - done),
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
            target,
            rate,
            errors,
            fmt_us(p99 as f64)
        );
        if terminal {
            eprint!("\r{line}");
        } else if n.is_multiple_of(5) {
            eprintln!("{line}");
        }
    }
}
