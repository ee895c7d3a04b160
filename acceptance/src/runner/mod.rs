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
mod plan;
mod trials;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use libtest_mimic::Arguments;
use parking_lot::Mutex;

use crate::BackendDecl;
use crate::report::{Outcome, Report};
use crate::suites::{self, Case};

#[derive(Debug, Clone)]
pub struct Options {
    /// A backend that cannot be provisioned fails the run instead of being skipped.
    pub strict: bool,
    /// Where the report goes; `None`: the workspace `reports/` (or `reports/runs/` for a
    /// filtered run, so a partial matrix never replaces the full one).
    pub report_dir: Option<PathBuf>,
}

impl Options {
    pub fn from_env() -> Options {
        Options {
            strict: crate::provision::strict(),
            report_dir: std::env::var_os("PRISM_ACCEPT_REPORT_DIR").map(PathBuf::from),
        }
    }
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
    run(args, crate::backends::all(), Options::from_env())
}

/// Runs the trials `args` select over `backends`.
pub fn run(args: Arguments, backends: Vec<Box<dyn BackendDecl>>, options: Options) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("acceptance: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shared = Arc::new(Shared {
        rt,
        outcomes: Mutex::new(Vec::new()),
        counter: AtomicU64::new(0),
    });
    let backends: Vec<Arc<dyn BackendDecl>> = backends.into_iter().map(Arc::from).collect();
    let cases: Arc<Vec<Case>> = Arc::new(suites::all());

    let states = instances::provision(&shared.rt, &args, &backends, &cases);
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
        write_report(std::mem::take(&mut *shared.outcomes.lock()), &args, &options);
    }
    conclusion.exit_code()
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

/// The summary on stdout and the matrix on disk.
fn write_report(outcomes: Vec<Outcome>, args: &Arguments, options: &Options) {
    if outcomes.is_empty() {
        return;
    }
    let report = Report::new(outcomes, args.filter.clone(), options.strict);
    print!("{}", report.summary());
    let dir = options
        .report_dir
        .clone()
        .unwrap_or_else(|| default_report_dir(args.filter.is_some()));
    match report.write(&dir) {
        Ok(()) => println!("report: {}", dir.join("compliance.md").display()),
        Err(e) => eprintln!("acceptance: cannot write the report to {}: {e}", dir.display()),
    }
}

fn default_report_dir(filtered: bool) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reports = manifest.parent().unwrap_or(manifest).join("reports");
    if filtered { reports.join("runs") } else { reports }
}
