//! The backend instances a run needs, provisioned once before any trial, and the
//! in-process proxy with a namespace per ready backend.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use libtest_mimic::Arguments;
use prism_proxy::config::{Config, NamespaceConfig};
use prism_proxy::server::RunningProxy;

use super::{Mode, selected, trials};
use crate::report::TargetInfo;
use crate::suites::Case;
use crate::{BackendDecl, Instance, Provider};

/// One backend's provisioned state for the run.
pub(super) enum Provisioned {
    Ready(Instance),
    Unavailable(String),
}

/// Whether `case` applies to what `decl` declares.
pub(super) fn applicable(decl: &dyn BackendDecl, case: &Case) -> bool {
    let declared = decl.interfaces();
    declared.contains(&case.interface) && case.also.iter().all(|i| declared.contains(i))
}

/// Provisions each backend that a selected trial touches (none for `--list`).
pub(super) fn provision(
    rt: &tokio::runtime::Runtime,
    args: &Arguments,
    backends: &[Arc<dyn BackendDecl>],
    cases: &[Case],
) -> Vec<Arc<Provisioned>> {
    let needed = |decl: &dyn BackendDecl| {
        [Mode::Direct, Mode::Proxy].iter().any(|m| {
            cases
                .iter()
                .any(|c| applicable(decl, c) && selected(args, &trials::trial_name(decl, *m, c)))
        })
    };
    backends
        .iter()
        .map(|decl| {
            let state = if args.list || !needed(decl.as_ref()) {
                Provisioned::Unavailable("not needed by the selected tests".into())
            } else {
                match rt.block_on(decl.provision()) {
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
            Arc::new(state)
        })
        .collect()
}

/// For the report: how each provisioned backend was had, its server's own version and,
/// for an endpoint, its own description.
pub(super) async fn describe(
    backends: &[Arc<dyn BackendDecl>],
    states: &[Arc<Provisioned>],
) -> BTreeMap<String, TargetInfo> {
    let mut targets = BTreeMap::new();
    for (decl, state) in backends.iter().zip(states) {
        let Provisioned::Ready(instance) = state.as_ref() else {
            continue;
        };
        let server_version = match decl.server_version(instance).await {
            Ok(version) => version,
            Err(e) => Some(format!("unknown ({e:#})")),
        };
        let info = TargetInfo {
            provider: instance.provider.as_str().to_string(),
            url: (instance.provider == Provider::External)
                .then(|| instance.url.clone())
                .flatten(),
            server_version,
            described: decl.self_description().and_then(Result::ok),
        };
        targets.insert(decl.name().to_string(), info);
    }
    targets
}

/// One in-process proxy with a namespace per ready backend that it has a driver for;
/// `None` when there is none (or it did not start, which the proxy trials then say).
pub(super) fn start_proxy(
    rt: &tokio::runtime::Runtime,
    backends: &[Arc<dyn BackendDecl>],
    states: &[Arc<Provisioned>],
) -> Option<RunningProxy> {
    let namespaces: Vec<(String, NamespaceConfig)> = backends
        .iter()
        .zip(states)
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
        return None;
    }
    let mut config = Config::ephemeral(namespaces);
    config.drain_timeout = Duration::from_secs(5);
    match rt.block_on(prism_proxy::server::start(&config)) {
        Ok(p) => Some(p),
        Err(e) => {
            eprintln!("acceptance: cannot start the in-process proxy: {e:#}");
            None
        }
    }
}
