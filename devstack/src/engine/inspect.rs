//! Looking at a running stack and taking it down: `status`, `logs`, `down`.

use bollard::container::LogOutput;
use bollard::models::ContainerStateStatusEnum;
use bollard::query_parameters::{LogsOptionsBuilder, RemoveVolumeOptionsBuilder};
use futures::{Stream, StreamExt};
use serde::Serialize;

use super::{Engine, EngineError, not_found};
use crate::settings::NetworkMode;
use crate::stack::Stack;

/// A service's container, as the engine sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No container.
    Missing,
    Created,
    Running,
    /// Stopped, with its exit code.
    Exited,
    Other,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub service: String,
    pub container: String,
    pub image: String,
    pub state: State,
    pub exit_code: Option<i64>,
    /// Docker's health status, for services with a health check.
    pub health: Option<String>,
    /// Host ports it listens on.
    pub ports: Vec<u16>,
}

impl Engine {
    pub async fn status(&self, stack: &Stack) -> Result<Vec<ServiceStatus>, EngineError> {
        let mut out = Vec::new();
        for service in &stack.services {
            let container = stack.container_name(&service.name);
            let ports = service.ports.iter().map(|p| p.published(stack.network)).collect();
            let mut status = ServiceStatus {
                service: service.name.clone(),
                container: container.clone(),
                image: service.image.clone(),
                state: State::Missing,
                exit_code: None,
                health: None,
                ports,
            };
            match self.docker.inspect_container(&container, None).await {
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(EngineError::docker(format!("inspect {container}"))(e)),
                Ok(found) => {
                    let state = found.state.unwrap_or_default();
                    status.state = match state.status {
                        Some(ContainerStateStatusEnum::RUNNING) => State::Running,
                        Some(ContainerStateStatusEnum::CREATED) => State::Created,
                        Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => State::Exited,
                        _ => State::Other,
                    };
                    if status.state == State::Exited {
                        status.exit_code = state.exit_code;
                    }
                    status.health = state.health.and_then(|h| h.status).map(|s| s.to_string());
                }
            }
            out.push(status);
        }
        Ok(out)
    }

    /// The container's log (stdout and stderr, in order), from the last `tail` lines
    /// (`None`: all); with `follow`, it goes on until the container stops.
    pub fn logs(
        &self,
        container: &str,
        tail: Option<usize>,
        follow: bool,
    ) -> impl Stream<Item = Result<String, EngineError>> + use<> {
        let tail = tail.map(|n| n.to_string()).unwrap_or_else(|| "all".into());
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail)
            .build();
        let name = container.to_string();
        self.docker.logs(container, Some(options)).map(move |item| match item {
            Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message }) => {
                Ok(String::from_utf8_lossy(&message).into_owned())
            }
            Ok(_) => Ok(String::new()),
            Err(e) if not_found(&e) => Err(EngineError::NotCreated {
                container: name.clone(),
            }),
            Err(e) => Err(EngineError::docker(format!("logs of {name}"))(e)),
        })
    }

    /// The last `lines` lines the container logged.
    pub async fn log_tail(&self, container: &str, lines: usize) -> Result<Vec<String>, EngineError> {
        let mut text = String::new();
        let mut stream = std::pin::pin!(self.logs(container, Some(lines), false));
        while let Some(chunk) = stream.next().await {
            text.push_str(&chunk?);
        }
        Ok(text.lines().map(str::to_string).collect())
    }

    /// Removes the stack's containers and network; with `reset`, its volumes too (all
    /// data: Dex's users and sessions, Signoz's traces). Returns what was removed.
    pub async fn down(&self, stack: &Stack, reset: bool) -> Result<Vec<String>, EngineError> {
        let mut removed = Vec::new();
        // Dependents first.
        let order = stack.ordered()?;
        for service in order.iter().rev() {
            let container = stack.container_name(&service.name);
            if self.remove_container(&container).await? {
                removed.push(container);
            }
        }
        if stack.network == NetworkMode::Bridge {
            let name = stack.network_name();
            match self.docker.remove_network(&name).await {
                Ok(()) => removed.push(name),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(EngineError::docker(format!("remove network {name}"))(e)),
            }
        }
        if reset {
            for volume in stack.volumes() {
                let name = stack.volume_name(&volume);
                // With `force` the engine also answers 204 for volumes that do not exist.
                if self.docker.inspect_volume(&name).await.is_err() {
                    continue;
                }
                let options = RemoveVolumeOptionsBuilder::default().force(true).build();
                match self.docker.remove_volume(&name, Some(options)).await {
                    Ok(()) => removed.push(name),
                    Err(e) if not_found(&e) => {}
                    Err(e) => return Err(EngineError::docker(format!("remove volume {name}"))(e)),
                }
            }
        }
        Ok(removed)
    }
}
