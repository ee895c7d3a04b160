//! `loadtest`: YAML load scenarios against Prism, with CI thresholds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use loadtest::report::{RunReport, fmt_us};
use loadtest::scenario::Scenario;
use loadtest::shard::Shard;

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
    let (report, stats, op_names) = loadtest::merge::merge(runs)?;
    print!("{}", report.table());
    report
        .write(out, &stats, &op_names)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("merged {} runs into {}", report.merged_runs, out.display());
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
