//! `loadtest run`: a scenario from file to verdict. Resolves the target (the embedded
//! proxy when the scenario names none), connects the clients, drives the engine (and the
//! `http.*` part on goose), shows progress, and writes `run.json`, `latency.hlog` and
//! `report.html`.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use parking_lot::Mutex;
use prism_proxy::client::{ClientTls, PrismClient};
use prism_proxy::config::{BackendConfig, Config, NamespaceConfig};
use prism_proxy::server::RunningProxy;

use crate::engine::{Engine, Progress};
use crate::report::{RunReport, STOPPED_EARLY, fmt_us};
use crate::scenario::{RunPart, Scenario, Target};
use crate::shard::Shard;
use crate::stats::{Recorder, Stats};
use crate::threshold::Threshold;

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
    let mut scenario = Scenario::load(path)?.with_overrides(&options.sets, path)?;
    let shard = options.shard.unwrap_or(Shard::WHOLE);
    let started_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let target = resolve(&scenario).await?;
    let clients = connect(&scenario, &target, path).await?;
    preflight(&scenario, &target, &clients[0]).await?;
    if scenario.needs_reflection() {
        let pool = crate::grpc::reflect(&clients[0], &scenario.grpc_services())
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "{}: the grpc.* operations have no `grpc.protos`, and the descriptors could not be had from {}: {e}",
                    path.display(),
                    target.label
                )
            })?;
        scenario.bind_reflected(&pool, path)?;
    }
    let op_names = scenario.reported_operations();
    let layout = scenario.layout();
    let mut stats = Stats::for_layout(&layout);
    crate::report::watch_windows(&scenario, &op_names, &layout, &mut stats);
    let run_id = uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string();
    let live = crate::live::Live::start(&run_id, &scenario, &op_names)
        .with_context(|| format!("{}: live metrics", path.display()))?;
    stats.live = live.as_ref().and_then(crate::live::Live::sink);
    // The embedded proxy's spans join the sampled requests' traces.
    let embedded_traces = match (&target.embedded, scenario.trace_share()) {
        (Some(_), Some(_)) => prism_proxy::telemetry::init_embedded_traces()
            .with_context(|| format!("{}: trace_sample: the embedded proxy's spans", path.display()))?,
        _ => None,
    };
    let tracing = match scenario.trace_share() {
        Some(share) => {
            let tracing = crate::live::Tracing::start(&run_id, share)
                .with_context(|| format!("{}: trace_sample", path.display()))?;
            let to = if tracing.exported {
                "client spans exported over OTLP"
            } else {
                "no traces endpoint (OTEL_EXPORTER_OTLP_ENDPOINT): only the proxy's spans are exported, if it exports any"
            };
            eprintln!("loadtest: traceparent on {:.3}% of requests; {to}", share * 100.0);
            Some(Arc::new(tracing))
        }
        None => None,
    };
    let stats = Arc::new(Mutex::new(stats));
    let abort = Arc::new(AtomicBool::new(false));
    let parts: Vec<(RunPart, Engine)> = scenario
        .parts()
        .into_iter()
        .zip(&layout.spans)
        .enumerate()
        .map(|(i, (part, span))| {
            let engine = Engine {
                clients: clients.clone(),
                shard,
                stats: Recorder {
                    stats: stats.clone(),
                    part: i,
                    base: span.ops.start,
                    shift: span.shift(&layout),
                },
                progress: Arc::new(Mutex::new(Progress::default())),
                abort: abort.clone(),
                tracing: tracing.clone().map(|tracing| crate::live::PartTracing {
                    tracing,
                    scenario: part.name.clone().unwrap_or_else(|| scenario.name.clone()),
                }),
            };
            (part, engine)
        })
        .collect();
    let threads = match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::CurrentThread => "one thread".to_string(),
        _ => format!(
            "{} worker threads",
            tokio::runtime::Handle::current().metrics().num_workers()
        ),
    };
    eprintln!(
        "loadtest: {} against {}: {:?} ({:?} warm-up), on {threads}",
        scenario.name,
        target.label,
        scenario.duration(),
        scenario.warmup()
    );
    if let Some(live) = &live {
        eprintln!("loadtest: {}", live.description);
    }
    if scenario.is_multi() {
        let each: Vec<String> = layout
            .spans
            .iter()
            .map(|s| {
                format!(
                    "{} ({}, from {} for {})",
                    s.name.as_deref().unwrap_or_default(),
                    if s.open { "open" } else { "closed" },
                    humantime::format_duration(s.start),
                    humantime::format_duration(s.duration)
                )
            })
            .collect();
        eprintln!("loadtest: {} scenarios at once: {}", each.len(), each.join(", "));
    }
    let printer = (!options.quiet).then(|| {
        let progress = parts.iter().map(|(p, e)| (p.start, e.progress.clone())).collect();
        tokio::spawn(show_progress(
            stats.clone(),
            progress,
            scenario.duration(),
            scenario.warmup(),
        ))
    });
    // Each scenario's http.* operations run on goose beside its engine, into the same stats.
    let mut http = Vec::new();
    let mut grpc = Vec::new();
    for (part, engine) in &parts {
        let (grpc_part, http_part) = crate::http::split(&part.scenario);
        if let Some(http_part) = http_part {
            http.push(start_http(
                &scenario,
                &target,
                shard.apply(&http_part),
                engine.stats.clone(),
                part.start,
            )?);
        }
        grpc.push(async move {
            tokio::time::sleep(part.start).await;
            engine.run(grpc_part.as_ref().unwrap_or(&part.scenario)).await
        });
    }
    let watcher = abort_watcher(&scenario, &stats, &abort, &op_names);
    futures::future::try_join_all(grpc).await?;
    let stopped = match watcher {
        Some(w) if abort.load(Ordering::Relaxed) => w.await.ok().flatten(),
        Some(w) => {
            w.abort();
            None
        }
        None => None,
    };
    for h in http {
        if stopped.is_some() {
            // Stopped early: the goose part goes too (its requests in flight are dropped).
            h.abort();
            let _ = h.await;
        } else {
            h.await.context("the goose task")??;
        }
    }
    if let Some(p) = printer {
        p.abort();
    }
    if std::io::stderr().is_terminal() && !options.quiet {
        eprintln!();
    }
    {
        let mut stats = stats.lock();
        // Close what the scenarios left open: the last second, and with several scenarios
        // those after the first ones ended; a stopped run's end is where it stopped.
        let measured = scenario.duration().saturating_sub(scenario.warmup());
        let end = stopped.as_ref().map_or(measured, |(at, _)| *at);
        stats.close_until(end.as_secs() + 1);
        stats.live = None;
    }
    if let Some(traces) = embedded_traces {
        flush("the embedded proxy's traces", move || {
            traces.shutdown();
            Ok(())
        })
        .await;
    }
    if let Some(tracing) = tracing {
        flush("traces", move || tracing.finish()).await;
    }
    if let Some(live) = live {
        flush("live metrics", move || live.finish()).await;
    }
    let stats = stats.lock();
    let mut report = RunReport::build(
        &scenario,
        options.shard,
        target.label,
        &op_names,
        &stats,
        started_unix_ms,
        stopped.as_ref().map(|(at, _)| *at),
    );
    if let Some((_, why)) = stopped {
        report.stopped_early(why);
    }
    report.scenario_file = Some(path.display().to_string());
    report.run_id = run_id;
    let dir = options
        .out
        .clone()
        .unwrap_or_else(|| default_out(&scenario.name, options.shard, started_unix_ms));
    write_results(&report, &dir, &stats, &op_names)?;
    Ok(report.passed)
}

/// An exporter's last flush, off the runtime's threads (it may wait on the network); a
/// failure is a warning: the run's own results are written either way.
async fn flush(what: &str, finish: impl FnOnce() -> Result<(), String> + Send + 'static) {
    let why = match tokio::task::spawn_blocking(finish).await {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(e) => e.to_string(),
    };
    eprintln!("loadtest: warning: {what}: the last export failed: {why}");
}

/// With `abort_on_fail` thresholds: a task that checks them every second of the measured
/// time (each once its `after` has passed, and once its operation has answered) and stops
/// the engine when one fails, returning when and why; the `http.*` part on goose is then
/// cancelled.
fn abort_watcher(
    scenario: &Scenario,
    stats: &Arc<Mutex<Stats>>,
    abort: &Arc<AtomicBool>,
    op_names: &[String],
) -> Option<tokio::task::JoinHandle<Option<(Duration, String)>>> {
    let rules: Vec<Threshold> = scenario
        .thresholds
        .iter()
        .filter_map(|t| t.parse::<Threshold>().ok())
        .filter(|t| t.abort_after.is_some())
        .collect();
    if rules.is_empty() {
        return None;
    }
    let (scenario, op_names) = (scenario.clone(), op_names.to_vec());
    let (stats, abort) = (stats.clone(), abort.clone());
    let start = tokio::time::Instant::now() + scenario.warmup();
    let end = scenario.duration().saturating_sub(scenario.warmup());
    let layout = scenario.layout();
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
        loop {
            tick.tick().await;
            let measured = start.elapsed();
            if measured >= end {
                return None;
            }
            let report = RunReport::build(
                &scenario,
                None,
                String::new(),
                &op_names,
                &stats.lock(),
                0,
                Some(measured),
            );
            for rule in rules
                .iter()
                .filter(|r| r.abort_after.is_some_and(|after| measured >= after))
            {
                let verdict = report.thresholds.iter().find(|v| v.threshold == rule.text);
                // Judged once its operations have answered (an `over` rule: once a
                // window with responses was full).
                let answered = match (&rule.window, verdict) {
                    (Some(_), Some(v)) => v.window_end_s.is_some(),
                    _ => rule
                        .scope(&op_names, &layout)
                        .is_ok_and(|ops| ops.iter().any(|&i| report.operations[i].count > 0)),
                };
                if let Some(v) = verdict.filter(|v| answered && !v.passed) {
                    abort.store(true, Ordering::Relaxed);
                    let why = format!(
                        "{STOPPED_EARLY} at {:.0} s of {:.0} s: `{}` failed (actual {})",
                        measured.as_secs_f64(),
                        end.as_secs_f64(),
                        rule.text,
                        v.actual_text()
                    );
                    return Some((measured, why));
                }
            }
        }
    }))
}

/// The goose task running the `http.*` part of the scenario against the target's HTTP
/// endpoint (the embedded proxy's admin listener when there is no remote target).
#[cfg(feature = "http")]
fn start_http(
    scenario: &Scenario,
    target: &Resolved,
    part: Scenario,
    stats: Recorder,
    delay: Duration,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let base = match &scenario.target {
        Some(Target::Remote(r)) => r.http_endpoint.clone(),
        _ => target.embedded.as_ref().map(|p| format!("http://{}", p.admin_addr)),
    }
    .context("http.* operations need target.http_endpoint")?;
    Ok(tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        crate::http::run(part, &base, stats, tokio::time::Instant::now()).await
    }))
}

/// Validation refuses `http.*` operations in a build without the `http` feature.
#[cfg(not(feature = "http"))]
fn start_http(
    _: &Scenario,
    _: &Resolved,
    _: Scenario,
    _: Recorder,
    _: Duration,
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
        "results: {0}/run.json, {0}/latency.hlog, {0}/report.html (CSV: summary.csv, series.csv; JUnit: thresholds.xml)",
        dir.display()
    );
    println!("{}", report.verdict_line());
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
        // Plain http: one HTTP/2 connection driven directly, each call in its worker's
        // task (a third less CPU per request than tonic's channel; see
        // PrismClient::connect_direct).
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

/// Asks the target what the scenario's namespace serves (`Meta/DescribeNamespace`) before
/// any load, so a wrong namespace or a missing interface is one clear error instead of a
/// run of failures. A target without the Meta service (a bare gRPC server) is not checked.
async fn preflight(scenario: &Scenario, target: &Resolved, client: &PrismClient) -> anyhow::Result<()> {
    let info = match client.describe().await {
        Ok(info) => info,
        Err(prism_proxy::BackendError::Unimplemented(_)) => {
            eprintln!("loadtest: the target does not answer Meta/DescribeNamespace; its interfaces were not checked");
            return Ok(());
        }
        Err(e) => anyhow::bail!(
            "the target {} refused namespace {:?} before the run: {e}",
            target.label,
            target.namespace
        ),
    };
    let missing: Vec<String> = scenario
        .operations
        .iter()
        .filter_map(|o| {
            let interface = crate::workload::OpKind::parse(&o.op)?.interface()?;
            (!info.interfaces.contains(&interface)).then(|| format!("{} needs {interface}", o.op))
        })
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "namespace {:?} on {} ({} backend) does not serve what the scenario calls: {}; it serves: {}",
        info.namespace,
        target.label,
        info.backend,
        missing.join(", "),
        info.interfaces
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
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

/// The terminal's width (80 when it cannot be told).
fn columns() -> usize {
    terminal_size::terminal_size_of(std::io::stderr())
        .map(|(w, _)| w.0 as usize)
        .or_else(|| std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()))
        .unwrap_or(80)
}

/// `numbers` after a progress bar, in fewer than `columns` characters so a redraw never
/// wraps: the bar shrinks first, then the numbers are cut.
pub(crate) fn fit_line(numbers: &str, elapsed: Duration, total: Duration, columns: usize) -> String {
    let room = columns.saturating_sub(1);
    let bar = room.saturating_sub(numbers.chars().count() + 2).min(30);
    let mut line = if bar >= 5 {
        let done = ((elapsed.as_secs_f64() / total.as_secs_f64().max(1e-9)) * bar as f64).min(bar as f64) as usize;
        format!("[{}{}]{numbers}", "#".repeat(done), "-".repeat(bar - done))
    } else {
        numbers.trim_start().to_string()
    };
    if line.chars().count() > room {
        line = line.chars().take(room).collect();
    }
    // Pad so a shorter line overwrites all of the last one.
    format!("{line:<room$}")
}

/// Once a second: a redrawn line on a terminal, a plain line every 5 s otherwise.
/// `progress` holds each scenario's start and live counters.
async fn show_progress(
    stats: Arc<Mutex<Stats>>,
    progress: Vec<(Duration, Arc<Mutex<Progress>>)>,
    total: Duration,
    warmup: Duration,
) {
    let terminal = std::io::stderr().is_terminal();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_completed = 0u64;
    let mut n = 0u64;
    let begun = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        n += 1;
        // Several scenarios: the run's time, their rates and requests in flight added up.
        let (mut elapsed, mut target, mut in_flight) = (Duration::ZERO, 0.0, None);
        for (start, p) in &progress {
            let p = p.lock();
            if begun.elapsed() < *start {
                continue;
            }
            elapsed = elapsed.max(*start + p.elapsed);
            target += p.target_rate;
            if let Some(n) = p.in_flight {
                in_flight = Some(in_flight.unwrap_or(0) + n);
            }
        }
        let (completed, errors, p99, dropped) = {
            let s = stats.lock();
            let (_, count, errors) = s.total();
            (count, errors, s.current_p99(), s.dropped)
        };
        let rate = completed.saturating_sub(last_completed);
        last_completed = completed;
        let stage = if elapsed < warmup { "warm-up" } else { "measuring" };
        let open_model = in_flight
            .map(|n| format!(" target {target:.0}/s in-flight {n} dropped {dropped}"))
            .unwrap_or_default();
        let numbers = format!(
            " {:.0}/{:.0}s {stage}{open_model} done {rate}/s errors {errors} p99 {}",
            elapsed.as_secs_f64(),
            total.as_secs_f64(),
            if completed == 0 {
                "-".to_string()
            } else {
                fmt_us(p99 as f64)
            }
        );
        let line = fit_line(&numbers, elapsed, total, columns());
        if terminal {
            eprint!("\r{line}");
        } else if n.is_multiple_of(5) {
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The progress line never wraps: it fits 80 columns (and narrower ones) with the
    /// numbers kept whole while there is room, the bar giving way first.
    #[test]
    fn the_progress_line_fits_the_terminal() {
        let numbers = " 12/60s measuring target 50000/s in-flight 1234 dropped 0 done 49876/s errors 0 p99 1.23ms";
        let (elapsed, total) = (Duration::from_secs(12), Duration::from_secs(60));
        for columns in [40, 80, 100, 200] {
            let line = fit_line(numbers, elapsed, total, columns);
            assert!(line.chars().count() < columns, "{columns}: {line:?}");
        }
        let wide = fit_line(numbers, elapsed, total, 200);
        assert!(wide.starts_with("[######") && wide.contains(numbers), "{wide:?}");
        let narrow = fit_line(numbers, elapsed, total, 80);
        assert!(!narrow.contains('['), "no room for a bar at 80 columns: {narrow:?}");
        assert!(narrow.starts_with("12/60s measuring"), "{narrow:?}");
    }
}
