//! The trials of a run: one per backend x mode x applicable case, a registry check per
//! in-tree backend, and the provisioning self-tests. Whether each runs, skips or fails
//! at once is [`plan`]'s decision.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use prism_proxy::backends::Backend;
use prism_proxy::client::PrismClient;

use super::instances::{Provisioned, applicable};
use super::plan::{Obstacles, Plan, plan};
use super::{Mode, Options, Shared, selected};
use crate::provision::ServerSpec;
use crate::report::{Outcome, Status};
use crate::suites::{Case, Subject};
use crate::{BackendDecl, Capability, Provider, registry};

/// Longest a single case may run.
const CASE_TIMEOUT: Duration = Duration::from_secs(120);

pub(super) fn trial_name(decl: &dyn BackendDecl, mode: Mode, case: &Case) -> String {
    let base = format!("{}::{}::{}", decl.name(), case.interface, case.name);
    match mode {
        Mode::Direct => base,
        Mode::Proxy => format!("proxy::{base}"),
    }
}

fn target_name(decl: &dyn BackendDecl, mode: Mode) -> String {
    match mode {
        Mode::Direct => decl.name().to_string(),
        Mode::Proxy => format!("proxy -> {}", decl.name()),
    }
}

/// What building trials needs from the run.
pub(super) struct Context<'a> {
    pub(super) shared: &'a Arc<Shared>,
    pub(super) args: &'a Arguments,
    pub(super) options: &'a Options,
    pub(super) cases: &'a Arc<Vec<Case>>,
    pub(super) proxy_endpoint: Option<&'a str>,
}

impl Context<'_> {
    /// Every trial, in a stable order.
    pub(super) fn all(&self, backends: &[Arc<dyn BackendDecl>], states: &[Arc<Provisioned>]) -> Vec<Trial> {
        let mut trials = Vec::new();
        for (decl, state) in backends.iter().zip(states) {
            if decl.in_registry() {
                trials.push(registry_trial(decl.clone()));
            }
            if let Some(description) = decl.self_description() {
                trials.push(self.description_trial(decl.as_ref(), description));
            }
            for mode in [Mode::Direct, Mode::Proxy] {
                if mode == Mode::Proxy && !decl.has_proxy_driver() {
                    continue;
                }
                for (index, case) in self.cases.iter().enumerate() {
                    if applicable(decl.as_ref(), case) {
                        trials.push(self.case_trial(decl, state, mode, index));
                    }
                }
            }
        }
        for spec in backends.iter().filter_map(|decl| decl.server()) {
            for path in [Provider::Process, Provider::Container] {
                trials.push(self.provisioning_trial(spec, path));
            }
        }
        trials
    }

    /// Records `status` for the report when the trial is selected (and this is no
    /// `--list`), and returns the trial that stands for a skip or an early failure.
    fn settled(&self, name: String, selected: bool, outcome: Outcome, plan: Plan) -> Trial {
        let status = match &plan {
            Plan::Skip(why) => Status::Skipped(why.clone()),
            Plan::Fail(message) => Status::Failed(message.clone()),
            Plan::Run => Status::Passed,
        };
        self.record(selected, Outcome { status, ..outcome });
        match plan {
            Plan::Fail(message) => Trial::test(name, move || Err(message.into())),
            _ => Trial::test(name, || Ok(())).with_ignored_flag(true),
        }
    }

    /// Keeps `outcome` for the report when its trial is selected (and this is no `--list`).
    fn record(&self, selected: bool, outcome: Outcome) {
        if selected && !self.args.list {
            self.shared.outcomes.lock().push(outcome);
        }
    }

    fn case_trial(&self, decl: &Arc<dyn BackendDecl>, state: &Arc<Provisioned>, mode: Mode, index: usize) -> Trial {
        let case = &self.cases[index];
        let name = trial_name(decl.as_ref(), mode, case);
        let mut capabilities = decl.capabilities();
        if mode == Mode::Proxy {
            capabilities.push(Capability::EnforcesLimits);
        }
        let obstacles = Obstacles {
            lacking: case
                .needs
                .iter()
                .filter(|c| !capabilities.contains(c))
                .map(|c| c.to_string())
                .collect(),
            ruled_out: None,
            unavailable: match state.as_ref() {
                _ if self.args.list => None,
                Provisioned::Unavailable(why) => Some(format!("{} not provisioned: {why}", decl.name())),
                Provisioned::Ready(_) if mode == Mode::Proxy && self.proxy_endpoint.is_none() => {
                    Some("the in-process proxy did not start".into())
                }
                Provisioned::Ready(_) => None,
            },
        };
        let template = Outcome {
            target: target_name(decl.as_ref(), mode),
            interface: case.interface.to_string(),
            case: case.name.to_string(),
            provider: match state.as_ref() {
                Provisioned::Ready(i) => i.provider.as_str().to_string(),
                Provisioned::Unavailable(_) => "none".to_string(),
            },
            status: Status::Passed,
            duration_ms: 0,
        };
        let is_selected = selected(self.args, &name);
        let plan = plan(obstacles, self.options.strict);
        if plan != Plan::Run {
            return self.settled(name, is_selected, template, plan);
        }
        let (shared, decl, state, cases) = (self.shared.clone(), decl.clone(), state.clone(), self.cases.clone());
        let endpoint = self.proxy_endpoint.map(str::to_string);
        let history = self
            .options
            .report_dir
            .join("histories")
            .join(format!("{}.json", name.replace("::", ".")));
        Trial::test(name, move || {
            let started = Instant::now();
            let case = &cases[index];
            let n = shared.counter.fetch_add(1, Ordering::Relaxed);
            let result = shared.rt.block_on(async {
                let backend = connect(decl.as_ref(), &state, mode, endpoint.as_deref()).await?;
                let subject = Subject {
                    backend,
                    prefix: format!("{}#{n}:", case.name),
                    history: Some(history),
                    capabilities,
                };
                tokio::time::timeout(CASE_TIMEOUT, (case.run)(subject))
                    .await
                    .map_err(|_| anyhow::anyhow!("timed out after {CASE_TIMEOUT:?}"))?
            });
            finished(&shared, template, started, result)
        })
    }

    /// `<name>::describes_itself`: an endpoint that cannot say what it serves (or says
    /// what its registry file does not) fails here, in the matrix too.
    fn description_trial(&self, decl: &dyn BackendDecl, description: Result<serde_json::Value, String>) -> Trial {
        let name = format!("{}::describes_itself", decl.name());
        let outcome = Outcome {
            target: decl.name().to_string(),
            interface: "meta".into(),
            case: "describes_itself".into(),
            provider: Provider::External.as_str().into(),
            status: Status::Passed,
            duration_ms: 0,
        };
        let is_selected = selected(self.args, &name);
        match description {
            Err(why) => self.settled(name, is_selected, outcome, Plan::Fail(why)),
            Ok(_) => {
                self.record(is_selected, outcome);
                Trial::test(name, || Ok(()))
            }
        }
    }

    /// `provisioning::<backend>::<process|container>`: the provider starts a real
    /// server, it answers, and after teardown nothing is left listening.
    fn provisioning_trial(&self, spec: &'static ServerSpec, path: Provider) -> Trial {
        let name = format!("provisioning::{}::{}", spec.backend, path.as_str());
        let unavailable = match path {
            Provider::Process => crate::provision::process::find(spec)
                .is_none()
                .then(|| format!("{} is not on PATH", spec.binary)),
            _ => (!crate::provision::container::engine_configured()).then(|| "no Docker engine".to_string()),
        };
        let outcome = Outcome {
            target: format!("provisioning -> {} ({})", spec.backend, path.as_str()),
            interface: "provisioning".into(),
            case: path.as_str().into(),
            provider: path.as_str().into(),
            status: Status::Passed,
            duration_ms: 0,
        };
        let obstacles = Obstacles {
            lacking: Vec::new(),
            ruled_out: spec.ruled_out(path),
            unavailable,
        };
        let plan = plan(obstacles, self.options.strict);
        if plan != Plan::Run {
            return self.settled(name.clone(), selected(self.args, &name), outcome, plan);
        }
        let shared = self.shared.clone();
        Trial::test(name, move || {
            let started = Instant::now();
            let result = shared.rt.block_on(provision_and_tear_down(spec, path));
            finished(&shared, outcome, started, result)
        })
    }
}

/// Records a trial that ran (its result and how long it took) and gives libtest its
/// verdict.
fn finished(shared: &Shared, outcome: Outcome, started: Instant, result: anyhow::Result<()>) -> Result<(), Failed> {
    let status = match &result {
        Ok(()) => Status::Passed,
        Err(e) => Status::Failed(format!("{e:#}")),
    };
    shared.outcomes.lock().push(Outcome {
        status,
        duration_ms: started.elapsed().as_millis() as u64,
        ..outcome
    });
    result.map_err(|e| Failed::from(format!("{e:#}")))
}

async fn provision_and_tear_down(spec: &'static ServerSpec, path: Provider) -> anyhow::Result<()> {
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
