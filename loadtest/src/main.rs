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
use loadtest::stats::Stats;
use prism_proxy::client::PrismClient;
use prism_proxy::config::Config;

/// Replays YAML load scenarios against a Prism endpoint and reports latency histograms
/// corrected for coordinated omission.
///
/// Exit codes: 0 the run passed its thresholds, 2 a threshold failed, 1 an error (bad
/// scenario, unreachable target).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and write run.json + latency.hlog to the output folder.
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
    },
    /// Check scenario files and report every problem found, without running anything.
    Validate {
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
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
        Command::Run { scenario, out, quiet } => {
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match runtime.block_on(run(&scenario, out, quiet)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(2),
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

async fn run(path: &Path, out: Option<PathBuf>, quiet: bool) -> anyhow::Result<bool> {
    let scenario = Scenario::load(path)?;
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
            let mut config = Config::single_memstore("default");
            config.listen = "127.0.0.1:0".parse()?;
            config.admin_listen = "127.0.0.1:0".parse()?;
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
    let mut clients = Vec::new();
    for _ in 0..channels {
        let client = PrismClient::connect(&endpoint, &namespace)
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        clients.push(client.with_timeout(timeout));
    }
    let op_names: Vec<String> = scenario.operations.iter().map(|o| o.op.clone()).collect();
    let engine = Engine {
        clients,
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
    engine.run(&scenario).await?;
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
    let report = RunReport::build(&scenario, target, &op_names, &stats, started_unix_ms);
    print!("{}", report.table());
    let dir = out.unwrap_or_else(|| {
        PathBuf::from("reports/runs").join(format!("{}-{}", sanitize(&scenario.name), started_unix_ms / 1000))
    });
    report
        .write(&dir, &stats, &op_names)
        .with_context(|| format!("writing results to {}", dir.display()))?;
    println!("results: {}/run.json, {}/latency.hlog", dir.display(), dir.display());
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
