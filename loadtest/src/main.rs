//! `loadtest`: YAML load scenarios against Prism, with CI thresholds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use loadtest::report::RunReport;
use loadtest::scenario::Scenario;
use loadtest::shard::Shard;

/// Replays YAML load scenarios against a Prism endpoint and reports latency histograms
/// corrected for coordinated omission.
///
/// Exit codes: 0 passed; 1 an error while running (target unreachable, TLS refused, a
/// file that cannot be written); 2 a check failed (a threshold, a regression in
/// `compare`, a run that measured nothing or whose every request failed); 3 bad input
/// (the command line, a scenario or `--set` that does not validate, a run file that
/// cannot be read).
#[derive(Parser)]
#[command(
    version,
    about,
    long_about,
    after_help = "Exit codes: 0 passed, 1 error while running, 2 a check failed, 3 bad input.\n\nExamples:\n  loadtest run scenarios/quickstart.yaml\n  loadtest run scenarios/kv-read-heavy.yaml --set target.endpoint=http://127.0.0.1:50051\n  loadtest compare reports/runs/a/run.json reports/runs/b/run.json --tolerance 10%"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario and write run.json, latency.hlog, report.html, summary.csv,
    /// series.csv and thresholds.xml (JUnit) to the output folder.
    ///
    /// With no `target` in the scenario, the proxy with memstore is started in-process
    /// (it then shares the machine's cores with the generator). A file with `scenarios:`
    /// runs them all at once; results are per operation (`<scenario>/<op>`), per scenario
    /// and in total.
    ///
    /// With OTEL_EXPORTER_OTLP_ENDPOINT set (`eval "$(devstack env)"`), the run's metrics
    /// are pushed over OTLP every second while it goes (loadtest.requests, loadtest.errors,
    /// loadtest.latency, with the run id of run.json).
    ///
    /// Exit codes: 0 passed, 1 error while running, 2 a check failed (a threshold, or
    /// nothing measured), 3 bad input (the scenario does not validate).
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
    /// Compare two runs per operation: latency (p50, p90, p99, p99.9) and throughput within
    /// the tolerance, the error rate within 1 percentage point; exit 2 on a regression.
    ///
    /// BASE and NEW are run.json files, the run folders `loadtest run` printed, or folders
    /// of repeated runs: then medians are compared, and a change counts only when the two
    /// series' ranges do not overlap.
    Compare {
        base: PathBuf,
        new: PathBuf,
        /// Allowed slowdown, e.g. `10%`.
        #[arg(long, default_value = "10%", value_parser = parse_percent)]
        tolerance: f64,
    },
}

// The generator allocates per request in hyper, h2 and tonic (malloc and free were 11%
// of its profile); mimalloc's thread-local free lists make that cheaper.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn parse_percent(s: &str) -> Result<f64, String> {
    let n = s.strip_suffix('%').unwrap_or(s);
    n.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v / 100.0)
        .ok_or_else(|| format!("{s:?} is not a percentage such as 10%"))
}

/// Exit code of a run that passed.
const PASSED: u8 = 0;
/// Exit code of an error while running.
const ERROR: u8 = 1;
/// Exit code of a failed check.
const FAILED: u8 = 2;
/// Exit code of input refused before anything ran.
const BAD_INPUT: u8 = 3;

/// What the user gave cannot be used (a run file, shards that do not merge): exit 3.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
struct BadInput(anyhow::Error);

/// A run.json, or the run folder `loadtest run` printed.
fn load_run(path: &Path) -> anyhow::Result<RunReport> {
    let file = if path.is_dir() {
        path.join("run.json")
    } else {
        path.to_path_buf()
    };
    let path = file.as_path();
    let read = || -> anyhow::Result<RunReport> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let run: RunReport = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a run.json written by loadtest", path.display()))?;
        Ok(run.with_stages())
    };
    read().map_err(|e| BadInput(e).into())
}

fn report(run: &Path, html: Option<PathBuf>) -> anyhow::Result<bool> {
    let report = load_run(run)?;
    print!("{}", report.table());
    let html = html.unwrap_or_else(|| run.with_file_name("report.html"));
    std::fs::write(&html, loadtest::html::render(&report)).with_context(|| format!("writing {}", html.display()))?;
    println!("html: {}", html.display());
    Ok(report.passed)
}

/// The runs at `path`: a run.json, a run folder, or a folder of run folders (repeated
/// runs, compared as a series).
fn load_runs(path: &Path) -> anyhow::Result<Vec<RunReport>> {
    if !path.is_dir() || path.join("run.json").is_file() {
        return Ok(vec![load_run(path)?]);
    }
    let mut folders: Vec<PathBuf> = std::fs::read_dir(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .map_err(BadInput)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("run.json").is_file())
        .collect();
    folders.sort();
    if folders.is_empty() {
        return Err(BadInput(anyhow::anyhow!(
            "{}: no run.json there, nor in any folder inside",
            path.display()
        ))
        .into());
    }
    folders.iter().map(|f| load_run(f)).collect()
}

fn compare(base: &Path, new: &Path, tolerance: f64) -> anyhow::Result<bool> {
    let comparison = loadtest::compare::compare(&load_runs(base)?, &load_runs(new)?, tolerance);
    for line in &comparison.lines {
        println!("{line}");
    }
    Ok(comparison.passed)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; a usage error is bad input.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { BAD_INPUT } else { PASSED });
        }
    };
    match cli.command {
        Command::Validate { scenarios } => {
            let mut ok = true;
            for path in scenarios {
                match Scenario::load(&path) {
                    Ok(s) if s.needs_reflection() => println!(
                        "{}: ok ({}, {:?}); its grpc.* requests are checked when the run starts, against the descriptors the server's reflection gives",
                        path.display(),
                        s.name,
                        s.duration()
                    ),
                    Ok(s) => println!("{}: ok ({}, {:?})", path.display(), s.name, s.duration()),
                    Err(e) => {
                        ok = false;
                        eprintln!("{e:#}");
                    }
                }
            }
            ExitCode::from(if ok { PASSED } else { BAD_INPUT })
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
            let runtime = match runtime() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::from(ERROR);
                }
            };
            let options = loadtest::run::RunOptions {
                scenario,
                sets,
                out,
                quiet,
                shard,
            };
            verdict(runtime.block_on(loadtest::run::run(&options)))
        }
    }
}

fn merge(runs: &[PathBuf], out: &Path) -> anyhow::Result<bool> {
    let (report, stats, op_names) = loadtest::merge::merge(runs).map_err(BadInput)?;
    print!("{}", report.table());
    report
        .write(out, &stats, &op_names)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("merged {} runs into {}", report.merged_runs, out.display());
    Ok(report.passed)
}

/// The generator's runtime: one thread when the process may use one core (a pinned
/// generator, a 1-CPU container), where a multi-threaded runtime's cross-thread wake-ups
/// only cost; a worker per core otherwise.
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores == 1 && std::env::var_os("LOADTEST_MULTI_THREAD").is_none() {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Runtime::new()
    }
}

/// 0 passed, 2 failed a check, 3 bad input, 1 any other error.
fn verdict(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::from(PASSED),
        Ok(false) => ExitCode::from(FAILED),
        Err(e) => {
            eprintln!("error: {e:#}");
            let bad_input = e
                .chain()
                .any(|c| c.is::<BadInput>() || c.is::<loadtest::scenario::ScenarioError>());
            ExitCode::from(if bad_input { BAD_INPUT } else { ERROR })
        }
    }
}
