//! `loadtest run`: a scenario from file to verdict. Resolves the target (the embedded
//! proxy when the scenario names none), connects the clients, drives the engine (and the
//! `http.*` part on goose), shows progress, and writes `run.json`, `latency.hlog` and
//! `report.html`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use parking_lot::Mutex;
use prism_proxy::client::{ClientTls, PrismClient};
use prism_proxy::config::{BackendConfig, Config, NamespaceConfig};
use prism_proxy::server::RunningProxy;

use crate::engine::{Engine, Progress};
use crate::report::{RunReport, fmt_us};
use crate::scenario::{Scenario, Target};
use crate::shard::Shard;
use crate::stats::Stats;

/// What `loadtest run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The scenario file.
    pub scenario: PathBuf,
    /// `--set path=value` overrides.
    pub sets: Vec<String>,
    /// Output folder; `None`: `reports/runs/<name>-<unix time>`.
    pub out: Option<PathBuf>,
    /// No live progress.
    pub quiet: bool,
    /// Run one shard of the load.
    pub shard: Option<Shard>,
}

/// Where the requests go, once resolved.
struct Resolved {
    endpoint: String,
    namespace: String,
    channels: usize,
    timeout: Duration,
    /// What the report calls the target.
    label: String,
    /// The proxy started in-process, when the scenario names no target; it serves for as
    /// long as this is held (read only by the `http` part, for its admin address).
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    embedded: Option<RunningProxy>,
}

/// Runs the scenario; `Ok(true)` when every threshold passed.
pub async fn run(options: &RunOptions) -> anyhow::Result<bool> {
    let path = options.scenario.as_path();
    let scenario = Scenario::load(path)?.with_overrides(&options.sets, path)?;
    let shard = options.shard.unwrap_or(Shard::WHOLE);
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let target = resolve(&scenario).await?;
    let clients = connect(&scenario, &target, path).await?;
    let op_names = scenario.reported_operations();
    let engine = Engine {
        clients,
        shard,
        stats: Arc::new(Mutex::new(Stats::new(op_names.len()))),
        progress: Arc::new(Mutex::new(Progress::default())),
    };
    eprintln!(
        "loadtest: {} against {}: {:?} ({:?} warm-up)",
        scenario.name,
        target.label,
        scenario.duration(),
        scenario.warmup()
    );
    let printer = (!options.quiet).then(|| {
        tokio::spawn(show_progress(
            engine.stats.clone(),
            engine.progress.clone(),
            scenario.duration(),
        ))
    });
    // http.* operations run on goose beside the engine, into the same stats.
    let (grpc_part, http_part) = crate::http::split(&scenario);
    let http = match http_part {
        Some(part) => Some(start_http(
            &scenario,
            &target,
            shard.apply(&part),
            engine.stats.clone(),
        )?),
        None => None,
    };
    engine.run(grpc_part.as_ref().unwrap_or(&scenario)).await?;
    if let Some(http) = http {
        http.await.context("the goose task")??;
    }
    if let Some(p) = printer {
        p.abort();
    }
    if std::io::stderr().is_terminal() && !options.quiet {
        eprintln!();
    }
    let stats = engine.stats.lock();
    let report = RunReport::build(
        &scenario,
        options.shard,
        target.label,
        &op_names,
        &stats,
        started_unix_ms,
    );
    let dir = options
        .out
        .clone()
        .unwrap_or_else(|| default_out(&scenario.name, options.shard, started_unix_ms));
    write_results(&report, &dir, &stats, &op_names)?;
    Ok(report.passed)
}

/// The goose task running the `http.*` part of the scenario against the target's HTTP
/// endpoint (the embedded proxy's admin listener when there is no remote target).
#[cfg(feature = "http")]
fn start_http(
    scenario: &Scenario,
    target: &Resolved,
    part: Scenario,
    stats: Arc<Mutex<Stats>>,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let base = match &scenario.target {
        Some(Target::Remote(r)) => r.http_endpoint.clone(),
        _ => target.embedded.as_ref().map(|p| format!("http://{}", p.admin_addr)),
    }
    .context("http.* operations need target.http_endpoint")?;
    let start = tokio::time::Instant::now();
    Ok(tokio::spawn(async move {
        crate::http::run(part, &base, stats, start).await
    }))
}

/// Validation refuses `http.*` operations in a build without the `http` feature.
#[cfg(not(feature = "http"))]
fn start_http(
    _: &Scenario,
    _: &Resolved,
    _: Scenario,
    _: Arc<Mutex<Stats>>,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    anyhow::bail!("http.* operations need loadtest built with the `http` feature")
}

/// The table on stdout, the files in `dir`, and the verdict line.
fn write_results(report: &RunReport, dir: &Path, stats: &Stats, op_names: &[String]) -> anyhow::Result<()> {
    print!("{}", report.table());
    report
        .write(dir, stats, op_names)
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
    Ok(())
}

/// The scenario's remote target, or the proxy with memstore started in-process.
async fn resolve(scenario: &Scenario) -> anyhow::Result<Resolved> {
    if let Some(Target::Remote(r)) = &scenario.target {
        return Ok(Resolved {
            endpoint: r.endpoint.clone(),
            namespace: r.namespace.clone(),
            channels: r.channels.max(1),
            timeout: r.timeout,
            label: r.endpoint.clone(),
            embedded: None,
        });
    }
    let config = Config::ephemeral([("default".to_string(), NamespaceConfig::new(BackendConfig::memstore()))]);
    let proxy = prism_proxy::server::start(&config)
        .await
        .context("starting the embedded proxy")?;
    let endpoint = format!("http://{}", proxy.grpc_addr);
    Ok(Resolved {
        label: format!("embedded proxy (memstore) at {endpoint}"),
        endpoint,
        namespace: "default".to_string(),
        channels: 4,
        timeout: Duration::from_secs(5),
        embedded: Some(proxy),
    })
}

/// One client per channel, with the scenario's TLS, metadata and bearer token.
async fn connect(scenario: &Scenario, target: &Resolved, path: &Path) -> anyhow::Result<Vec<PrismClient>> {
    let mut metadata: Vec<(String, String)> = Vec::new();
    let mut tls = ClientTls::default();
    if let Some(Target::Remote(r)) = &scenario.target {
        tls = r.tls().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        metadata.extend(r.metadata.iter().map(|(k, v)| (k.clone(), v.clone())));
        if let Some(auth) = &r.auth {
            let token = auth.token().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            metadata.push(("authorization".into(), format!("Bearer {token}")));
        }
    }
    let endpoint = &target.endpoint;
    let mut clients = Vec::new();
    for _ in 0..target.channels {
        // Plain http: one HTTP/2 connection driven directly, without tonic's request
        // buffer task (about a task hop per request less; see PrismClient::connect_direct).
        let connected = if endpoint.starts_with("http://") {
            PrismClient::connect_direct(endpoint, &target.namespace).await
        } else {
            PrismClient::connect_with(endpoint, &target.namespace, &tls).await
        };
        let mut client = connected
            .with_context(|| format!("connecting to {endpoint}"))?
            .with_timeout(target.timeout);
        for (key, value) in &metadata {
            client = client.with_metadata(key, value)?;
        }
        clients.push(client);
    }
    Ok(clients)
}

fn default_out(name: &str, shard: Option<Shard>, started_unix_ms: u64) -> PathBuf {
    let suffix = shard
        .map(|s| format!("-shard{}of{}", s.index, s.count))
        .unwrap_or_default();
    PathBuf::from("reports/runs").join(format!("{}-{}{suffix}", sanitize(name), started_unix_ms / 1000))
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
        let (elapsed, target) = {
            let p = progress.lock();
            (p.elapsed, p.target_rate)
        };
        let (completed, errors, p99) = {
            let s = stats.lock();
            let (_, count, errors) = s.total();
            (count, errors, s.current_p99())
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
