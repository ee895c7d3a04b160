//! `up`: make the engine run the stack. Plans first (what exists, what changed, which
//! host ports are taken) so a conflict fails before anything is touched; then pulls what
//! is missing, creates the network and volumes, and starts each service in dependency
//! order, waiting until it is ready. A service whose definition is unchanged and that is
//! running (or, for a one-shot, has exited 0) is left alone, so a second `up` changes
//! nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, Mount, MountType, NetworkCreateRequest,
    NetworkingConfig, PortBinding, ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::ready::{self, Outcome};
use super::volumes::VolumeRecords;
use super::{
    Engine, EngineError, LABEL_CONFIG, LABEL_PORTS, LABEL_PROJECT, LABEL_SERVICE, PortUse, Progress, ServiceFailure,
    not_found,
};
use crate::settings::NetworkMode;
use crate::stack::{Ready, Restart, Service, Stack, render};

/// When to pull images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PullPolicy {
    /// Pull images that are not present.
    #[default]
    Missing,
    /// Pull every image, even if present.
    Always,
    /// Never pull; a missing image is an error.
    Never,
}

#[derive(Debug, Clone)]
pub struct UpOptions {
    pub pull: PullPolicy,
    /// Pulling every missing image gives up after this long.
    pub pull_timeout: Duration,
    /// Starting the services gives up after this long, counted once the images are
    /// present (each service also has its own limit).
    pub timeout: Duration,
    /// Which image last used each volume (from the previous `up`).
    pub volumes: VolumeRecords,
    /// Start even where a volume holds another version's data.
    pub upgrade: bool,
    /// Where the stack's files are written and mounted from.
    pub files_dir: PathBuf,
}

impl UpOptions {
    /// The CLI's defaults: pull what is missing within 20 minutes, then 5 minutes to
    /// start; no volume records, no upgrade.
    pub fn new(files_dir: PathBuf) -> UpOptions {
        UpOptions {
            pull: PullPolicy::Missing,
            pull_timeout: Duration::from_secs(20 * 60),
            timeout: Duration::from_secs(300),
            volumes: VolumeRecords::new(),
            upgrade: false,
            files_dir,
        }
    }
}

/// What `up` did to a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Created,
    /// Its definition changed (or it had stopped), so it was replaced.
    Recreated,
    Unchanged,
}

#[derive(Debug, Clone)]
pub struct UpReport {
    /// Each service in start order: what was done, and how long until it was ready.
    pub services: Vec<(String, Action, Duration)>,
    /// The volume records to keep for the next `up`.
    pub volumes: VolumeRecords,
}

impl UpReport {
    pub fn action(&self, service: &str) -> Option<Action> {
        self.services.iter().find(|(s, ..)| s == service).map(|(_, a, _)| *a)
    }
}

struct Planned<'a> {
    service: &'a Service,
    container: String,
    hash: String,
    action: Action,
}

impl Engine {
    /// Brings `stack` up; see the module documentation.
    pub async fn up(
        &self,
        stack: &Stack,
        options: &UpOptions,
        progress: Progress<'_>,
    ) -> Result<UpReport, EngineError> {
        let order = stack.ordered()?;
        render::write_files(stack, &options.files_dir)?;

        let mut plan = Vec::new();
        for service in order {
            let container = stack.container_name(&service.name);
            let hash = definition_hash(stack, service, &options.files_dir);
            let action = match self.docker.inspect_container(&container, None).await {
                Err(e) if not_found(&e) => Action::Created,
                Err(e) => return Err(EngineError::docker(format!("inspect {container}"))(e)),
                Ok(found) => {
                    let same = found
                        .config
                        .and_then(|c| c.labels)
                        .and_then(|l| l.get(LABEL_CONFIG).cloned())
                        .is_some_and(|h| h == hash);
                    let state = found.state.unwrap_or_default();
                    let alive = match service.ready {
                        Ready::Completed => state.exit_code == Some(0) && state.running != Some(true),
                        _ => state.running == Some(true),
                    };
                    if same && alive {
                        Action::Unchanged
                    } else {
                        Action::Recreated
                    }
                }
            };
            plan.push(Planned {
                service,
                container,
                hash,
                action,
            });
        }
        self.check_ports(stack, &plan).await?;
        let changes = self.version_changes(stack, &options.volumes).await?;
        if !changes.is_empty() && !options.upgrade {
            return Err(EngineError::OlderVolumes(changes));
        }
        for change in &changes {
            progress(&format!("upgrading: {change}"));
        }
        let pulls_end = Instant::now() + options.pull_timeout;
        for step in plan.iter().filter(|p| p.action != Action::Unchanged) {
            self.ensure_image(step.service, options.pull, pulls_end, progress)
                .await?;
        }
        self.ensure_network_and_volumes(stack).await?;

        // Counted from here: a first `up` on a slow network spends its pulls' time, not
        // the services'.
        let deadline = Instant::now() + options.timeout;
        let mut report = UpReport {
            services: Vec::new(),
            volumes: VolumeRecords::new(),
        };
        for (i, step) in plan.iter().enumerate() {
            let started = Instant::now();
            if step.action != Action::Unchanged {
                if step.action == Action::Recreated {
                    progress(&format!(
                        "recreating {} (its definition changed or it stopped)",
                        step.container
                    ));
                    self.remove_container(&step.container).await?;
                } else {
                    progress(&format!("creating {}", step.container));
                }
                let body = container_body(stack, step.service, &step.hash, &options.files_dir);
                let create = CreateContainerOptionsBuilder::default().name(&step.container).build();
                self.docker
                    .create_container(Some(create), body)
                    .await
                    .map_err(EngineError::docker(format!("create {}", step.container)))?;
                self.docker
                    .start_container(&step.container, None)
                    .await
                    .map_err(EngineError::docker(format!("start {}", step.container)))?;
            }
            let limit = step
                .service
                .timeout
                .min(deadline.saturating_duration_since(Instant::now()));
            match ready::wait(self, step.service, &step.container, limit, progress).await? {
                Outcome::Ready => {
                    progress(&format!(
                        "{} ready ({}, {:.1}s)",
                        step.service.name,
                        match step.action {
                            Action::Created => "created",
                            Action::Recreated => "recreated",
                            Action::Unchanged => "unchanged",
                        },
                        started.elapsed().as_secs_f64()
                    ));
                    report
                        .services
                        .push((step.service.name.clone(), step.action, started.elapsed()));
                }
                Outcome::Failed(reason) => {
                    let restarts = self.restart_count(&step.container).await;
                    let reason = match restarts {
                        Some(n) if n > 0 => format!("{reason} (after {n} restart(s))"),
                        _ => reason,
                    };
                    let log_tail = self.log_tail(&step.container, 20).await.unwrap_or_default();
                    return Err(EngineError::ServiceFailed(Box::new(ServiceFailure {
                        service: step.service.name.clone(),
                        container: step.container.clone(),
                        reason,
                        log_tail,
                        came_up: report.services.iter().map(|(s, ..)| s.clone()).collect(),
                        not_started: plan[i + 1..].iter().map(|p| p.service.name.clone()).collect(),
                    })));
                }
            }
        }
        report.volumes = self.record_volumes(stack, options.volumes.clone()).await?;
        Ok(report)
    }

    async fn restart_count(&self, container: &str) -> Option<i64> {
        self.docker.inspect_container(container, None).await.ok()?.restart_count
    }

    /// Fails when a host port a service will listen on is taken — naming the holder when
    /// it is a devstack container — before anything is created.
    async fn check_ports(&self, stack: &Stack, plan: &[Planned<'_>]) -> Result<(), EngineError> {
        let holders = self.port_holders().await?;
        for step in plan.iter().filter(|p| p.action != Action::Unchanged) {
            for port in &step.service.ports {
                let port = port.published(stack.network);
                let holder = match holders.port_use(port) {
                    PortUse::Free => continue,
                    // The container being replaced frees its own ports.
                    PortUse::Devstack(h) if h.container == step.container => continue,
                    PortUse::Devstack(h) => format!(
                        ": devstack container {} (project {}) holds it, so that stack is already running; `devstack --project {} down` stops it",
                        h.container, h.project, h.project
                    ),
                    PortUse::Other => {
                        " by another program; stop it or choose another port (see `devstack --help`)".into()
                    }
                };
                return Err(EngineError::PortInUse {
                    port,
                    service: step.service.name.clone(),
                    holder,
                });
            }
        }
        Ok(())
    }

    async fn ensure_image(
        &self,
        service: &Service,
        pull: PullPolicy,
        pulls_end: Instant,
        progress: Progress<'_>,
    ) -> Result<(), EngineError> {
        let present = self.has_image(&service.image).await?;
        match pull {
            PullPolicy::Never if !present => {
                return Err(EngineError::ImageMissing {
                    service: service.name.clone(),
                    image: service.image.clone(),
                });
            }
            PullPolicy::Never | PullPolicy::Missing if present => return Ok(()),
            _ => {}
        }
        progress(&format!("pulling {} for {}", service.image, service.name));
        let options = CreateImageOptionsBuilder::default().from_image(&service.image).build();
        let mut stream = self.docker.create_image(Some(options), None, None);
        let mut layers: HashMap<String, (i64, i64)> = HashMap::new();
        let mut last_print = Instant::now();
        loop {
            let left = pulls_end.saturating_duration_since(Instant::now());
            let item = match tokio::time::timeout(left, stream.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => {
                    return Err(EngineError::Pull {
                        service: service.name.clone(),
                        image: service.image.clone(),
                        message: "not done within --pull-timeout; a slow network needs a longer one (what was pulled is kept)".into(),
                    });
                }
            };
            let info = item.map_err(|e| EngineError::Pull {
                service: service.name.clone(),
                image: service.image.clone(),
                message: e.to_string(),
            })?;
            if let (Some(id), Some(detail)) = (info.id, info.progress_detail)
                && let (Some(current), Some(total)) = (detail.current, detail.total)
            {
                layers.insert(id, (current, total));
            }
            if last_print.elapsed() >= Duration::from_secs(1) && !layers.is_empty() {
                let (done, total) = layers.values().fold((0, 0), |(d, t), (c, n)| (d + c, t + n));
                progress(&format!(
                    "  {}: {:.1} / {:.1} MB in {} layers",
                    service.image,
                    done as f64 / 1e6,
                    total as f64 / 1e6,
                    layers.len()
                ));
                last_print = Instant::now();
            }
        }
        progress(&format!("pulled {}", service.image));
        Ok(())
    }

    async fn ensure_network_and_volumes(&self, stack: &Stack) -> Result<(), EngineError> {
        let labels = HashMap::from([(LABEL_PROJECT.to_string(), stack.project.clone())]);
        if stack.network == NetworkMode::Bridge {
            let name = stack.network_name();
            match self.docker.inspect_network(&name, None).await {
                Ok(_) => {}
                Err(e) if not_found(&e) => {
                    let request = NetworkCreateRequest {
                        name: name.clone(),
                        driver: Some("bridge".into()),
                        labels: Some(labels.clone()),
                        ..Default::default()
                    };
                    self.docker
                        .create_network(request)
                        .await
                        .map_err(EngineError::docker(format!("create network {name}")))?;
                }
                Err(e) => return Err(EngineError::docker(format!("inspect network {name}"))(e)),
            }
        }
        for volume in stack.volumes() {
            let name = stack.volume_name(&volume);
            // Creating an existing volume is a no-op in the Engine API.
            let request = VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(labels.clone()),
                ..Default::default()
            };
            self.docker
                .create_volume(request)
                .await
                .map_err(EngineError::docker(format!("create volume {name}")))?;
        }
        Ok(())
    }

    /// Removes `container`, running or not; false when there was none.
    pub(crate) async fn remove_container(&self, container: &str) -> Result<bool, EngineError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(container, Some(options)).await {
            Ok(()) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(EngineError::docker(format!("remove {container}"))(e)),
        }
    }
}

/// A hash of everything a service's container is made from: its definition, the network
/// mode and the contents of the files it mounts.
fn definition_hash(stack: &Stack, service: &Service, files_dir: &Path) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "{service:?}|{:?}|{}|{:?}",
        stack.network,
        files_dir.display(),
        service.restart()
    ));
    for mount in &service.files {
        if let Some(file) = stack.files.iter().find(|f| f.path == mount.file) {
            hasher.update(&file.contents);
        }
    }
    hasher.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn restart_policy(service: &Service) -> RestartPolicy {
    let (name, retries) = match service.restart() {
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Restart::OnFailure(n) => (RestartPolicyNameEnum::ON_FAILURE, Some(i64::from(n))),
        Restart::No => (RestartPolicyNameEnum::NO, None),
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: retries,
    }
}

fn container_body(stack: &Stack, service: &Service, hash: &str, files_dir: &Path) -> ContainerCreateBody {
    let ports: Vec<u16> = service.ports.iter().map(|p| p.published(stack.network)).collect();
    let labels = HashMap::from([
        (LABEL_PROJECT.to_string(), stack.project.clone()),
        (LABEL_SERVICE.to_string(), service.name.clone()),
        (LABEL_CONFIG.to_string(), hash.to_string()),
        (
            LABEL_PORTS.to_string(),
            ports.iter().map(u16::to_string).collect::<Vec<_>>().join(","),
        ),
    ]);
    let mut mounts: Vec<Mount> = service
        .volumes
        .iter()
        .map(|v| Mount {
            typ: Some(MountType::VOLUME),
            source: Some(stack.volume_name(&v.volume)),
            target: Some(v.target.clone()),
            ..Default::default()
        })
        .collect();
    mounts.extend(service.files.iter().map(|f| Mount {
        typ: Some(MountType::BIND),
        source: Some(files_dir.join(&f.file).display().to_string()),
        target: Some(f.target.clone()),
        read_only: Some(true),
        ..Default::default()
    }));
    let mut host_config = HostConfig {
        mounts: Some(mounts),
        restart_policy: Some(restart_policy(service)),
        ulimits: (!service.ulimits.is_empty()).then(|| {
            service
                .ulimits
                .iter()
                .map(|u| ResourcesUlimits {
                    name: Some(u.name.clone()),
                    soft: Some(u.soft),
                    hard: Some(u.hard),
                })
                .collect()
        }),
        ..Default::default()
    };
    let mut body = ContainerCreateBody {
        image: Some(service.image.clone()),
        entrypoint: service.entrypoint.clone(),
        cmd: (!service.command.is_empty()).then(|| service.command.clone()),
        env: Some(service.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        user: service.user.clone(),
        labels: Some(labels),
        ..Default::default()
    };
    if let Ready::Healthy(test) = &service.ready {
        const SECOND: i64 = 1_000_000_000;
        body.healthcheck = Some(HealthConfig {
            test: Some(test.clone()),
            interval: Some(SECOND),
            timeout: Some(super::ready::CHECK_TIMEOUT.as_nanos() as i64),
            retries: Some(3),
            ..Default::default()
        });
    }
    match stack.network {
        NetworkMode::Host => host_config.network_mode = Some("host".into()),
        NetworkMode::Bridge => {
            let network = stack.network_name();
            host_config.network_mode = Some(network.clone());
            body.exposed_ports = Some(service.ports.iter().map(|p| format!("{}/tcp", p.container)).collect());
            host_config.port_bindings = Some(
                service
                    .ports
                    .iter()
                    .map(|p| {
                        let binding = PortBinding {
                            host_ip: Some("127.0.0.1".into()),
                            host_port: Some(p.host.to_string()),
                        };
                        (format!("{}/tcp", p.container), Some(vec![binding]))
                    })
                    .collect(),
            );
            body.networking_config = Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network,
                    EndpointSettings {
                        aliases: Some(vec![service.name.clone()]),
                        ..Default::default()
                    },
                )])),
            });
        }
    }
    body.host_config = Some(host_config);
    body
}
