//! Turns backends x cases into libtest-mimic trials named `<backend>::<interface>::<case>`
//! and `proxy::<backend>::<interface>::<case>`, provisions what the selected trials need
//! (nothing for `--list`), runs them, tears everything down and writes the report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use prism_proxy::backends::Backend;
use prism_proxy::client::PrismClient;
use prism_proxy::config::{Config, NamespaceConfig};
use prism_proxy::server::RunningProxy;

use crate::provision::ServerSpec;
use crate::report::{Outcome, Report, Status};
use crate::suites::{self, Case, Subject};
use crate::{BackendDecl, Capability, Instance, Provider, registry};

/// Longest a single case may run.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

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

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Direct,
    Proxy,
}

/// One backend's provisioned state for the run.
enum Provisioned {
    Ready(Instance),
    Unavailable(String),
}

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

fn target_name(decl: &dyn BackendDecl, mode: Mode) -> String {
    match mode {
        Mode::Direct => decl.name().to_string(),
        Mode::Proxy => format!("proxy -> {}", decl.name()),
    }
}

fn trial_name(decl: &dyn BackendDecl, mode: Mode, case: &Case) -> String {
    let base = format!("{}::{}::{}", decl.name(), case.interface, case.name);
    match mode {
        Mode::Direct => base,
        Mode::Proxy => format!("proxy::{base}"),
    }
}

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

    // Which backends the selected trials touch: only those are provisioned.
    let applicable = |decl: &dyn BackendDecl, case: &Case| {
        let declared = decl.interfaces();
        declared.contains(&case.interface) && case.also.iter().all(|i| declared.contains(i))
    };
    let needed = |decl: &dyn BackendDecl| {
        [Mode::Direct, Mode::Proxy].iter().any(|m| {
            cases
                .iter()
                .any(|c| applicable(decl, c) && selected(&args, &trial_name(decl, *m, c)))
        })
    };
    let mut states: Vec<Arc<Provisioned>> = Vec::new();
    for decl in &backends {
        let state = if args.list || !needed(decl.as_ref()) {
            Provisioned::Unavailable("not needed by the selected tests".into())
        } else {
            match shared.rt.block_on(decl.provision()) {
                Ok(instance) => {
                    eprintln!(
                        "acceptance: {} provisioned ({})",
                        decl.name(),
                        instance.provider.as_str()
                    );
                    Provisioned::Ready(instance)
                }
                Err(e) => Provisioned::Unavailable(format!("{e:#}")),
            }
        };
        states.push(Arc::new(state));
    }

    // One in-process proxy with a namespace per ready backend that it has a driver for.
    let proxy = if args.list {
        None
    } else {
        let namespaces: Vec<(String, NamespaceConfig)> = backends
            .iter()
            .zip(&states)
            .filter_map(|(decl, state)| match state.as_ref() {
                Provisioned::Ready(instance) => decl.proxy_backend(instance).map(|backend| {
                    let mut ns = NamespaceConfig::new(backend);
                    ns.interfaces = Some(decl.interfaces());
                    (decl.name().to_string(), ns)
                }),
                Provisioned::Unavailable(_) => None,
            })
            .collect();
        if namespaces.is_empty() {
            None
        } else {
            let mut config = Config::ephemeral(namespaces);
            config.drain_timeout = Duration::from_secs(5);
            match shared.rt.block_on(prism_proxy::server::start(&config)) {
                Ok(p) => Some(p),
                Err(e) => {
                    eprintln!("acceptance: cannot start the in-process proxy: {e:#}");
                    None
                }
            }
        }
    };
    let proxy_endpoint = proxy.as_ref().map(|p: &RunningProxy| format!("http://{}", p.grpc_addr));

    let mut trials = Vec::new();
    for (decl, state) in backends.iter().zip(&states) {
        if decl.in_registry() {
            trials.push(registry_trial(decl.clone()));
        }
        for mode in [Mode::Direct, Mode::Proxy] {
            let has_proxy_namespace = decl.has_proxy_driver();
            if mode == Mode::Proxy && !has_proxy_namespace {
                continue;
            }
            for (index, case) in cases.iter().enumerate() {
                if !applicable(decl.as_ref(), case) {
                    continue;
                }
                let name = trial_name(decl.as_ref(), mode, case);
                let is_selected = selected(&args, &name);
                let mut capabilities = decl.capabilities();
                if mode == Mode::Proxy {
                    capabilities.push(Capability::EnforcesLimits);
                }
                let lacking: Vec<String> = case
                    .needs
                    .iter()
                    .filter(|c| !capabilities.contains(c))
                    .map(|c| c.to_string())
                    .collect();
                let unavailable = match state.as_ref() {
                    Provisioned::Unavailable(why) => Some(format!("{} not provisioned: {why}", decl.name())),
                    Provisioned::Ready(_) if mode == Mode::Proxy && proxy_endpoint.is_none() => {
                        Some("the in-process proxy did not start".into())
                    }
                    Provisioned::Ready(_) => None,
                };
                let outcome = |status| Outcome {
                    target: target_name(decl.as_ref(), mode),
                    interface: case.interface.to_string(),
                    case: case.name.to_string(),
                    provider: match state.as_ref() {
                        Provisioned::Ready(i) => i.provider.as_str().to_string(),
                        Provisioned::Unavailable(_) => "none".to_string(),
                    },
                    status,
                    duration_ms: 0,
                };
                if !lacking.is_empty() {
                    if is_selected && !args.list {
                        let reason = format!("needs capability {}", lacking.join(", "));
                        lock(&shared.outcomes).push(outcome(Status::Skipped(reason)));
                    }
                    trials.push(Trial::test(name, || Ok(())).with_ignored_flag(true));
                    continue;
                }
                if let Some(why) = unavailable.filter(|_| !args.list) {
                    if options.strict {
                        let message = format!("strict mode: {why}");
                        if is_selected {
                            lock(&shared.outcomes).push(outcome(Status::Failed(message.clone())));
                        }
                        trials.push(Trial::test(name, move || Err(message.into())));
                    } else {
                        if is_selected {
                            lock(&shared.outcomes).push(outcome(Status::Skipped(why)));
                        }
                        trials.push(Trial::test(name, || Ok(())).with_ignored_flag(true));
                    }
                    continue;
                }
                let (shared, decl, state, cases) = (shared.clone(), decl.clone(), state.clone(), cases.clone());
                let (endpoint, template) = (proxy_endpoint.clone(), outcome(Status::Passed));
                trials.push(Trial::test(name, move || {
                    let started = Instant::now();
                    let case = &cases[index];
                    let n = shared.counter.fetch_add(1, Ordering::Relaxed);
                    let result = shared.rt.block_on(async {
                        let backend = connect(decl.as_ref(), &state, mode, endpoint.as_deref()).await?;
                        let subject = Subject {
                            backend,
                            prefix: format!("{}#{n}:", case.name),
                        };
                        tokio::time::timeout(CASE_TIMEOUT, (case.run)(subject))
                            .await
                            .map_err(|_| anyhow::anyhow!("timed out after {CASE_TIMEOUT:?}"))?
                    });
                    let status = match &result {
                        Ok(()) => Status::Passed,
                        Err(e) => Status::Failed(format!("{e:#}")),
                    };
                    let duration_ms = started.elapsed().as_millis() as u64;
                    lock(&shared.outcomes).push(Outcome {
                        status,
                        duration_ms,
                        ..template
                    });
                    result.map_err(|e| Failed::from(format!("{e:#}")))
                }));
            }
        }
    }

    for spec in crate::provision::specs::ALL {
        for path in [Provider::Process, Provider::Container] {
            trials.push(provisioning_trial(&shared, &args, &options, spec, path));
        }
    }

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
        let outcomes = std::mem::take(&mut *lock(&shared.outcomes));
        if !outcomes.is_empty() {
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
    }
    conclusion.exit_code()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn default_report_dir(filtered: bool) -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reports = manifest.parent().unwrap_or(manifest).join("reports");
    if filtered { reports.join("runs") } else { reports }
}

async fn connect(
    decl: &dyn BackendDecl,
    state: &Provisioned,
    mode: Mode,
    proxy_endpoint: Option<&str>,
) -> anyhow::Result<Backend> {
    let Provisioned::Ready(instance) = state else {
        anyhow::bail!("{} is not provisioned", decl.name());
    };
    match mode {
        Mode::Direct => decl.connect(instance).await,
        Mode::Proxy => {
            let endpoint = proxy_endpoint.ok_or_else(|| anyhow::anyhow!("no proxy"))?;
            let client = PrismClient::connect(endpoint, decl.name()).await?;
            Ok(client.with_timeout(Duration::from_secs(30)).backend(&decl.interfaces()))
        }
    }
}

/// `<backend>::registry_matches_code`: the YAML claim and the code agree.
fn registry_trial(decl: Arc<dyn BackendDecl>) -> Trial {
    Trial::test(format!("{}::registry_matches_code", decl.name()), move || {
        let entry = registry::load(&registry::dir(), decl.name()).map_err(|e| Failed::from(format!("{e:#}")))?;
        let differences = registry::differences(&entry, decl.as_ref());
        if differences.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "acceptance/registry/{}.yaml disagrees with the code:\n  {}",
                decl.name(),
                differences.join("\n  ")
            )
            .into())
        }
    })
}

/// `provisioning::<backend>::<process|container>`: the provider starts a real server,
/// it answers, and after teardown nothing is left listening.
fn provisioning_trial(
    shared: &Arc<Shared>,
    args: &Arguments,
    options: &Options,
    spec: &'static ServerSpec,
    path: Provider,
) -> Trial {
    let name = format!("provisioning::{}::{}", spec.backend, path.as_str());
    let unavailable = match path {
        Provider::Process => crate::provision::process::find(spec)
            .is_none()
            .then(|| format!("{} is not on PATH", spec.binary)),
        _ => (!crate::provision::container::engine_configured()).then(|| "no Docker engine".to_string()),
    };
    let record = {
        let shared = shared.clone();
        move |status: Status, duration_ms: u64| {
            lock(&shared.outcomes).push(Outcome {
                target: format!("provisioning -> {} ({})", spec.backend, path.as_str()),
                interface: "provisioning".into(),
                case: path.as_str().into(),
                provider: path.as_str().into(),
                status,
                duration_ms,
            })
        }
    };
    let is_selected = selected(args, &name) && !args.list;
    // A provider ruled out on purpose is a counted skip, even in strict mode.
    if let Some(why) = spec.ruled_out(path) {
        if is_selected {
            record(Status::Skipped(why), 0);
        }
        return Trial::test(name, || Ok(())).with_ignored_flag(true);
    }
    if let Some(why) = unavailable {
        if options.strict {
            let message = format!("strict mode: {why}");
            if is_selected {
                record(Status::Failed(message.clone()), 0);
            }
            return Trial::test(name, move || Err(message.into()));
        }
        if is_selected {
            record(Status::Skipped(why), 0);
        }
        return Trial::test(name, || Ok(())).with_ignored_flag(true);
    }
    let shared = shared.clone();
    Trial::test(name, move || {
        let started = Instant::now();
        let result = shared.rt.block_on(async {
            let instance = match path {
                Provider::Process => crate::provision::process::start(spec).await?,
                _ => crate::provision::container::start(spec).await?,
            };
            anyhow::ensure!(instance.provider == path, "provisioned by {:?}", instance.provider);
            let url = instance.url.clone().unwrap_or_default();
            let addr = instance.addr.ok_or_else(|| anyhow::anyhow!("no address for {url}"))?;
            anyhow::ensure!((spec.ready)(addr).await, "{url} does not answer");
            drop(instance);
            // Teardown must leave nothing listening.
            for _ in 0..100 {
                if tokio::net::TcpStream::connect(addr).await.is_err() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::bail!("{url} still answers after teardown")
        });
        let duration_ms = started.elapsed().as_millis() as u64;
        match &result {
            Ok(()) => record(Status::Passed, duration_ms),
            Err(e) => record(Status::Failed(format!("{e:#}")), duration_ms),
        }
        result.map_err(|e| Failed::from(format!("{e:#}")))
    })
}
