//! `prism-proxy`: serve the Prism interfaces over gRPC from a YAML config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use prism_proxy::config::Config;
use prism_proxy::server::{self, DrainOutcome};

// glibc's malloc was a sixth of the instructions per proxied Get (reports/baseline/proxy.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `include/mimalloc.h` (the enum's 16th entry);
/// libmimalloc-sys names no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before giving it back to the OS, in ms, unless
/// `MIMALLOC_PURGE_DELAY` says otherwise. mimalloc v3's default is 1000: after a burst of
/// large requests the proxy's peak RSS grew 124-147 MiB where glibc's grew 76-85 MiB
/// (`a_flood_of_real_bytes_is_bounded_by_the_request_byte_budget`). At 100 ms it grew
/// 114-121 MiB with Get throughput unchanged; 10 ms cost about 4 % of it, 0 cost 40 %
/// (reports/baseline/hardening.md).
const PURGE_DELAY_MS: std::ffi::c_long = 100;

#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set stores an integer in mimalloc's option table; it takes no
        // pointers, and this runs first in main, before any other thread could read it.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
}

/// The reference Prism proxy: one gRPC API (key-value, pub/sub, queues, time series)
/// routed per namespace to a backend.
///
/// Each request names its namespace in the `x-prism-namespace` metadata. Standard gRPC
/// health and reflection are served, so `grpcurl` and `grpc_health_probe` work. The admin
/// listener serves /healthz, /readyz and /metrics (Prometheus).
///
/// Environment: RUST_LOG filters the logs on stderr and PRISM_LOG_FORMAT=json makes them
/// JSON lines; OTEL_EXPORTER_OTLP_ENDPOINT (and the other standard OTEL_* variables)
/// export request traces; PRISM_OIDC_ISSUER with PRISM_OIDC_AUDIENCE turn on bearer-token
/// checks against that issuer. `devstack env` prints both sets for the local stack.
///
/// On SIGTERM or SIGINT the proxy stops accepting, lets in-flight requests finish and
/// exits 0; if they do not finish within the drain timeout it exits 1.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    long_about,
    after_help = "Example:\n  prism-proxy --config proxy/config/memstore.yaml --listen 127.0.0.1:50051"
)]
struct Args {
    /// YAML config (listeners, namespaces, limits). Without it: one memstore namespace
    /// called `default`.
    #[arg(short, long, value_name = "FILE", env = "PRISM_CONFIG")]
    config: Option<PathBuf>,

    /// gRPC listen address; overrides `listen` in the config (port 0 picks a free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Admin HTTP listen address; overrides `admin_listen` in the config.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,

    /// Share the gRPC port with other prism-proxy processes started with this flag
    /// (SO_REUSEPORT; the kernel spreads connections over them); sets
    /// `transport.reuse_port`. With `--runtime current-thread`, one process per core is
    /// the fastest way to use several cores. Give each its own `--admin-listen`.
    #[arg(long)]
    reuse_port: bool,

    /// Runtime worker threads (default: one per CPU, or TOKIO_WORKER_THREADS). On a small
    /// machine shared with clients, 1 avoids cross-thread wakeups (see
    /// reports/baseline/backends.md).
    #[arg(long, value_name = "N")]
    worker_threads: Option<usize>,

    /// Async runtime: `multi-thread` (tokio's work-stealing pool, one worker per CPU) or
    /// `current-thread` (everything on one thread: the fastest for a proxy given one core;
    /// run one process per core to use more; see reports/baseline/scaling.md).
    #[arg(long, value_name = "KIND", value_enum, default_value_t = RuntimeKind::MultiThread)]
    runtime: RuntimeKind,

    /// Longest wait for in-flight requests on shutdown; overrides `drain_timeout`.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    drain_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum RuntimeKind {
    MultiThread,
    CurrentThread,
}

fn main() -> ExitCode {
    tune_allocator();
    let args = Args::parse();
    let mut builder = match (args.runtime, args.worker_threads) {
        (RuntimeKind::MultiThread, _) => tokio::runtime::Builder::new_multi_thread(),
        (RuntimeKind::CurrentThread, None) => tokio::runtime::Builder::new_current_thread(),
        (RuntimeKind::CurrentThread, Some(_)) => {
            eprintln!("error: --worker-threads applies to --runtime multi-thread; current-thread has one thread");
            return ExitCode::from(2);
        }
    };
    builder.enable_all();
    if let Some(n) = args.worker_threads {
        builder.worker_threads(n.max(1));
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Read before telemetry starts: the file may name the collector.
    let config = match load_config(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // Inside the runtime: the gRPC trace exporter needs one.
    let telemetry = {
        let _runtime = runtime.enter();
        match prism_proxy::telemetry::init(&config.telemetry) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let code = match runtime.block_on(run(config)) {
        Ok(DrainOutcome::Clean) => ExitCode::SUCCESS,
        Ok(DrainOutcome::TimedOut) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    };
    // Spans still buffered go out before the process ends.
    let _runtime = runtime.enter();
    telemetry.shutdown();
    code
}

/// The config file (or one memstore namespace), the environment's OIDC settings and the
/// command line's overrides applied.
fn load_config(args: &Args) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::single_memstore("default"),
    };
    config.apply_env(|name| std::env::var(name).ok())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(admin) = args.admin_listen {
        config.admin_listen = admin;
    }
    if args.reuse_port {
        config.transport.reuse_port = true;
    }
    if let Some(timeout) = args.drain_timeout {
        config.drain_timeout = timeout;
    }
    Ok(config)
}

async fn run(config: Config) -> anyhow::Result<DrainOutcome> {
    // Listening for signals before anyone can learn the proxy is up: a SIGTERM sent right
    // after the ready line must drain, not kill.
    let shutdown = shutdown_signal().context("cannot listen for shutdown signals")?;
    let proxy = server::start(&config).await?;
    let names: Vec<&str> = config.namespaces.keys().map(String::as_str).collect();
    // One parseable line on stdout: scripts and tests wait for it to learn the ports.
    println!(
        "prism-proxy ready grpc={} admin={} namespaces={}",
        proxy.grpc_addr,
        proxy.admin_addr,
        names.join(",")
    );
    shutdown.await;
    tracing::info!(timeout = ?config.drain_timeout, "draining");
    let outcome = proxy.drain(config.drain_timeout).await;
    match outcome {
        DrainOutcome::Clean => tracing::info!("drained; bye"),
        DrainOutcome::TimedOut => tracing::warn!(
            timeout = ?config.drain_timeout,
            "drain timed out with requests still in flight; they were cut off"
        ),
    }
    Ok(outcome)
}

/// Registers for SIGTERM and SIGINT now; the future resolves on the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}
