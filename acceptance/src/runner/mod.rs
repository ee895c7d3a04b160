//! Turns backends x cases into libtest-mimic trials named `<backend>::<interface>::<case>`
//! and `proxy::<backend>::<interface>::<case>`, provisions what the selected trials need
//! (nothing for `--list`), runs them, tears everything down and writes the report.
//!
//! - [`instances`]: provisioning the backends the selection touches, and the in-process
//!   proxy in front of them;
//! - [`plan`]: the skip and strict-mode rules for one trial;
//! - [`trials`]: building the trials (cases, registry checks, provisioning self-tests);
//! - here: the order of it all, selection and the report.

mod instances;
mod latency;
mod plan;
mod trials;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::Context as _;
use libtest_mimic::Arguments;
use parking_lot::Mutex;

use crate::BackendDecl;
use crate::report::{Outcome, Report, RunMeta};
use crate::suites::{self, Case};

#[derive(Debug, Clone)]
pub struct Options {
    /// A backend that cannot be provisioned fails the run instead of being skipped.
    pub strict: bool,
    /// Where `compliance.md` and `compliance.json` go.
    pub report_dir: PathBuf,
    /// Where JUnit XML goes, if anywhere.
    pub junit: Option<PathBuf>,
    /// Time each operation of each target after the suites, for the report.
    pub latency: bool,
}

impl Options {
    /// For `cargo test -p acceptance`: strict mode from `PRISM_ACCEPT_STRICT`, JUnit to
    /// `PRISM_ACCEPT_JUNIT`, and the report in `PRISM_ACCEPT_REPORT_DIR`; else, for an
    /// unfiltered run with `PRISM_ACCEPT_UPDATE_MATRIX=1`, the committed `reports/`; else
    /// a folder of its own under `reports/runs/`, so a local or partial run never
    /// replaces the committed matrix.
    pub fn from_env(filtered: bool) -> Options {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let update = var("PRISM_ACCEPT_UPDATE_MATRIX").is_some_and(|v| v == "1" || v == "true");
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let reports = manifest.parent().unwrap_or(manifest).join("reports");
        let report_dir = match var("PRISM_ACCEPT_REPORT_DIR") {
            Some(dir) => PathBuf::from(dir),
            None if update && !filtered => reports,
            None => reports.join("runs").join(run_folder_name()),
        };
        Options {
            strict: crate::provision::strict(),
            report_dir,
            junit: var("PRISM_ACCEPT_JUNIT").map(PathBuf::from),
            // The matrix runs measure; a filtered run only when asked.
            latency: match var("PRISM_ACCEPT_LATENCY") {
                Some(v) => v == "1" || v == "true",
                None => !filtered,
            },
        }
    }
}

/// A folder name for a run: when it started (UTC, to the second) and the process.
pub fn run_folder_name() -> String {
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    format!("{}-{}", now.replace(':', "").trim_end_matches('Z'), std::process::id())
}

/// Straight to the backend, or through the in-process proxy over gRPC.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Direct,
    Proxy,
}

/// What every trial shares: the runtime, the outcomes for the report, a counter that
/// gives each trial its own key prefix.
struct Shared {
    rt: tokio::runtime::Runtime,
    outcomes: Mutex<Vec<Outcome>>,
    counter: AtomicU64,
}

/// Entry point of `cargo test -p acceptance`.
pub fn main() -> ExitCode {
    let args = Arguments::from_args();
    let options = Options::from_env(args.filter.is_some() || !args.skip.is_empty());
    let backends = match crate::backends::all() {
        Ok(backends) => backends,
        Err(e) => {
            eprintln!("acceptance: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(args, backends, options) {
        Ok(conclusion) => conclusion.exit_code(),
        Err(e) => {
            eprintln!("acceptance: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the trials `args` select over `backends` and writes the report; what libtest
/// concluded, or why the run could not start.
pub fn run(
    args: Arguments,
    backends: Vec<Box<dyn BackendDecl>>,
    options: Options,
) -> anyhow::Result<libtest_mimic::Conclusion> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| anyhow::anyhow!("cannot start a tokio runtime: {e}"))?;
    let shared = Arc::new(Shared {
        rt,
        outcomes: Mutex::new(Vec::new()),
        counter: AtomicU64::new(0),
    });
    let backends: Vec<Arc<dyn BackendDecl>> = backends.into_iter().map(Arc::from).collect();
    let cases: Arc<Vec<Case>> = Arc::new(suites::all());

    let states = instances::provision(&shared.rt, &args, &backends, &cases);
    let mut meta = RunMeta::now(args.filter.clone(), options.strict);
    if !args.list {
        meta.targets = shared.rt.block_on(instances::describe(&backends, &states));
    }
    let proxy = if args.list {
        None
    } else {
        instances::start_proxy(&shared.rt, &backends, &states)
    };
    let proxy_endpoint = proxy.as_ref().map(|p| format!("http://{}", p.grpc_addr));

    let context = trials::Context {
        shared: &shared,
        args: &args,
        options: &options,
        cases: &cases,
        proxy_endpoint: proxy_endpoint.as_deref(),
    };
    let trials = context.all(&backends, &states);
    let conclusion = libtest_mimic::run(&args, trials);
    let measured = if !args.list && options.latency {
        eprintln!("acceptance: timing each operation of each target (recorded, not asserted)");
        shared
            .rt
            .block_on(measure_latency(&backends, &states, proxy_endpoint.as_deref()))
    } else {
        Vec::new()
    };

    if let Some(proxy) = proxy {
        shared.rt.block_on(proxy.drain(Duration::from_secs(5)));
    }
    // Dropping the states tears down containers and processes (their guards); inside the
    // runtime, since removing a container is async.
    {
        let _runtime = shared.rt.enter();
        drop(states);
    }
    if !args.list {
        write_report(std::mem::take(&mut *shared.outcomes.lock()), meta, measured, &options)?;
    }
    Ok(conclusion)
}

/// Runs the model history in `file` once against `decl`, directly (provisioned as for a
/// run, then torn down): its first divergence from the model, or `Ok` when it has none.
pub fn replay(decl: &dyn BackendDecl, file: &Path) -> anyhow::Result<Result<(), String>> {
    let history = crate::suites::model::History::read(file)?;
    let rt = tokio::runtime::Runtime::new().context("cannot start a tokio runtime")?;
    rt.block_on(async {
        let instance = decl
            .provision()
            .await
            .with_context(|| format!("provisioning {}", decl.name()))?;
        let backend = decl.connect(&instance).await?;
        let subject = crate::suites::Subject {
            backend,
            prefix: format!("replay-{}:", run_folder_name()),
            history: None,
            capabilities: decl.capabilities(),
        };
        let outcome = crate::suites::model::replay(subject, &history).await;
        drop(instance);
        Ok(outcome.map_err(|e| format!("{e:#}")))
    })
}

/// Every ready target's operations timed, directly and through the proxy.
async fn measure_latency(
    backends: &[Arc<dyn BackendDecl>],
    states: &[Arc<instances::Provisioned>],
    proxy_endpoint: Option<&str>,
) -> Vec<crate::report::OperationLatency> {
    let prefix = format!("latency-{}:", run_folder_name());
    let mut out = Vec::new();
    for (decl, state) in backends.iter().zip(states) {
        let instances::Provisioned::Ready(instance) = state.as_ref() else {
            continue;
        };
        if let Ok(backend) = decl.connect(instance).await {
            out.extend(latency::measure(decl.name(), &backend, &prefix).await);
        }
        let Some(endpoint) = proxy_endpoint.filter(|_| decl.has_proxy_driver()) else {
            continue;
        };
        if let Ok(client) = prism_proxy::client::PrismClient::connect(endpoint, decl.name()).await {
            let backend = client.backend(&decl.interfaces());
            out.extend(latency::measure(&format!("proxy -> {}", decl.name()), &backend, &prefix).await);
        }
    }
    out
}

/// Whether the trial called `name` is selected by the filter and `--skip`s.
fn selected(args: &Arguments, name: &str) -> bool {
    let matches = |pattern: &str| {
        if args.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    };
    args.filter.as_deref().is_none_or(matches) && !args.skip.iter().any(|s| matches(s))
}

/// The summary on stdout, the matrix and the JUnit XML on disk. A report that cannot be
/// written is an error: a run whose results are lost did not pass.
fn write_report(
    outcomes: Vec<Outcome>,
    meta: RunMeta,
    latency: Vec<crate::report::OperationLatency>,
    options: &Options,
) -> anyhow::Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut report = Report::new(outcomes, meta);
    report.latency = latency;
    print!("{}", report.summary());
    let dir = &options.report_dir;
    report
        .write(dir)
        .with_context(|| format!("cannot write the report to {}", dir.display()))?;
    println!("report: {}", dir.join("compliance.md").display());
    if let Some(path) = &options.junit {
        let xml = report.junit().context("cannot render JUnit XML")?;
        std::fs::write(path, xml).with_context(|| format!("cannot write JUnit XML to {}", path.display()))?;
        println!("junit: {}", path.display());
    }
    Ok(())
}
