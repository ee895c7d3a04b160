//! `prism-conformance`: the acceptance suites as a tool, for a plugin written in any
//! language (`--endpoint`) or the built-in backends, with the compliance matrix and JUnit
//! XML. The same trials as `cargo test -p acceptance`.

use std::path::PathBuf;
use std::process::ExitCode;

use acceptance::backends::{self, EndpointOptions, GrpcEndpoint};
use acceptance::runner::{self, Options};
use acceptance::{BackendDecl, Capability};
use clap::Parser;

/// Run the Prism conformance suites against a server and write the compliance matrix.
///
/// With `--endpoint`, the target is any server speaking the Prism gRPC interfaces (a
/// plugin in any language, or a running prism-proxy): it is asked which interfaces the
/// namespace serves (prism.meta.v1.Meta/DescribeNamespace) and every suite of those runs
/// against it. Without it, the built-in backends run (`--backend` picks some), each
/// provisioned as `cargo test -p acceptance` does: PRISM_ACCEPT_<BACKEND>_URL for a server
/// of yours, else a container, else the server binary on PATH.
///
/// Trials are named <target>::<interface>::<case> (and proxy::<backend>::... for the
/// built-in backends through the in-process proxy). FILTER selects those whose name
/// contains it (`--exact`: equal to it).
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    long_about,
    after_help = "Exit status: 0 every selected trial passed (skips allowed), 1 a trial failed, 2 usage error or nothing selected.\n\n\
Examples:\n  prism-conformance --endpoint 127.0.0.1:7000 --junit conformance.xml\n  \
prism-conformance --endpoint 127.0.0.1:7000 --registry my-plugin.yaml keyvalue_ttl\n  \
prism-conformance --backend redis --skip proxy::\n  prism-conformance --list"
)]
struct Args {
    /// Run only trials whose name contains this (with `--exact`: equals it).
    filter: Option<String>,
    /// FILTER and `--skip` match whole trial names.
    #[arg(long)]
    exact: bool,
    /// Leave out trials whose name contains this; repeatable.
    #[arg(long, value_name = "PATTERN")]
    skip: Vec<String>,
    /// List the trials and exit; starts nothing.
    #[arg(long)]
    list: bool,

    /// The server to test: `host:port` or `http://host:port`.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// The namespace on that server.
    #[arg(long, default_value = "default", requires = "endpoint")]
    namespace: String,
    /// Its name in trial names and the matrix [default: the registry file's `backend`,
    /// else grpc_endpoint].
    #[arg(long, requires = "endpoint", value_parser = target_name)]
    name: Option<String>,
    /// A registry file stating the endpoint's claim (`backend`, `description`,
    /// `implements`, `capabilities`, as acceptance/registry/*.yaml): the interfaces are
    /// checked against what the server describes, the capabilities unlock the cases
    /// that need them.
    #[arg(long, value_name = "FILE", requires = "endpoint")]
    registry: Option<PathBuf>,
    /// Capabilities the endpoint claims, besides its registry file's (comma-separated:
    /// pubsub_delivered_count, queue_delivery_count, ttl_remaining, enforces_limits,
    /// timeseries_columns).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = Capability::parse, requires = "endpoint")]
    capabilities: Vec<Capability>,

    /// Built-in backends to run (memstore, redis, postgres, nats, clickhouse, and the other
    /// server versions registry/versions.yaml lists, such as valkey-8.0); repeatable
    /// [default: all of them without --endpoint, none with it].
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    backend: Vec<String>,

    /// Where compliance.md and compliance.json go [default: prism-conformance/<date>-<pid>].
    #[arg(long, value_name = "DIR")]
    report_dir: Option<PathBuf>,
    /// Also write JUnit XML here: a test case per trial, skips as skipped with their reason.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// A backend that cannot be provisioned fails instead of being skipped (also
    /// PRISM_ACCEPT_STRICT=1).
    #[arg(long)]
    strict: bool,
    /// After the suites, time each operation of each target (directly and through the
    /// proxy), p50/p99 into the report; recorded, not asserted.
    #[arg(long)]
    latency: bool,
    /// Run this many trials at once [default: the number of CPUs].
    #[arg(long, value_name = "N")]
    test_threads: Option<usize>,
    /// Run the model history a failed model check wrote (histories/*.json in its report
    /// folder) once against the target (`--endpoint`, or one `--backend`), directly, and
    /// report its first divergence from the model; exit 0 when there is none.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["list", "junit"])]
    replay: Option<PathBuf>,
}

fn target_name(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{name:?}: use lowercase letters, digits, _ and - (it names trials)"
        ))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let usage = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    };
    if let Some(path) = &args.registry {
        // Read now, so a bad file is a usage error rather than a failed trial.
        if let Err(e) = acceptance::registry::load_file(path) {
            return usage(format!("--registry: {e:#}"));
        }
    }
    let mut targets: Vec<Box<dyn BackendDecl>> = Vec::new();
    let mut built_in = backends::built_in();
    match backends::other_versions() {
        Ok(rows) => built_in.extend(rows),
        Err(e) => return usage(e.to_string()),
    }
    let known: Vec<&str> = built_in.iter().map(|b| b.name()).collect();
    if let Some(unknown) = args.backend.iter().find(|b| !known.contains(&b.as_str())) {
        return usage(format!(
            "--backend {unknown}: no such built-in backend; known: {}",
            known.join(", ")
        ));
    }
    let wanted = |name: &str| {
        if args.backend.is_empty() {
            args.endpoint.is_none()
        } else {
            args.backend.iter().any(|b| b == name)
        }
    };
    targets.extend(built_in.into_iter().filter(|b| wanted(b.name())));
    if let Some(endpoint) = &args.endpoint {
        if !args.list {
            eprintln!(
                "prism-conformance: asking {endpoint} what namespace {} serves",
                args.namespace
            );
        }
        targets.push(Box::new(GrpcEndpoint::describe(EndpointOptions {
            endpoint: endpoint.clone(),
            namespace: args.namespace.clone(),
            name: args.name.clone(),
            registry: args.registry.clone(),
            capabilities: args.capabilities.clone(),
        })));
    }

    if let Some(file) = &args.replay {
        let [target] = targets.as_slice() else {
            return usage(format!(
                "--replay runs against one target: give --endpoint or one --backend ({} selected)",
                targets.len()
            ));
        };
        return match runner::replay(target.as_ref(), file) {
            Err(e) => usage(format!("--replay {}: {e:#}", file.display())),
            Ok(Ok(())) => {
                println!("{}: no divergence from the model on {}", file.display(), target.name());
                ExitCode::SUCCESS
            }
            Ok(Err(divergence)) => {
                println!("{}: diverges on {}: {divergence}", file.display(), target.name());
                ExitCode::FAILURE
            }
        };
    }
    let options = Options {
        strict: args.strict || acceptance::provision::strict(),
        report_dir: args
            .report_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("prism-conformance").join(runner::run_folder_name())),
        junit: args.junit.clone(),
        latency: args.latency,
    };
    // libtest-mimic panics when stdout is closed early (`--list | head`): the list goes
    // to a file first, and from there to stdout, where a closed pipe just ends it.
    let list_file = match args.list.then(tempfile::NamedTempFile::new).transpose() {
        Ok(file) => file,
        Err(e) => return usage(format!("cannot create a temporary file for the list: {e}")),
    };
    let trial_args = libtest_mimic::Arguments {
        filter: args.filter.clone(),
        exact: args.exact,
        skip: args.skip.clone(),
        list: args.list,
        test_threads: args.test_threads,
        logfile: list_file.as_ref().map(|f| f.path().display().to_string()),
        ..libtest_mimic::Arguments::default()
    };
    match runner::run(trial_args, targets, options) {
        Err(e) => usage(format!("{e:#}")),
        Ok(_) if args.list => match list_file.map(|f| print_list(f.path())) {
            Some(Err(e)) => usage(format!("cannot print the list: {e}")),
            _ => ExitCode::SUCCESS,
        },
        Ok(c) if c.num_failed > 0 => ExitCode::FAILURE,
        Ok(c) if c.num_passed + c.num_ignored == 0 => usage(format!(
            "no trial matches{}; `prism-conformance --list` shows their names",
            args.filter.as_deref().map(|f| format!(" {f:?}")).unwrap_or_default()
        )),
        Ok(_) => ExitCode::SUCCESS,
    }
}

/// Copies the list libtest-mimic wrote to stdout; a reader that stops early is not an error.
fn print_list(path: &std::path::Path) -> std::io::Result<()> {
    let mut list = std::fs::File::open(path)?;
    match std::io::copy(&mut list, &mut std::io::stdout().lock()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.map(drop),
    }
}
