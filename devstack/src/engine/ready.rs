//! Waiting for a service to be ready: Docker's health status, a TCP port answering, or a
//! one-shot's exit code — polled with backoff until the service's limit. A container that
//! exits (other than a one-shot with code 0) fails at once rather than at the limit.

use std::time::{Duration, Instant};

use bollard::models::{ContainerStateStatusEnum, HealthStatusEnum};

use super::{Engine, EngineError, Progress};
use crate::stack::{Ready, Service};

pub enum Outcome {
    Ready,
    Failed(String),
}

/// How long one health check may take (as in the container's health config).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the wait is reported while it goes on.
const REPORT_EVERY: Duration = Duration::from_secs(5);

pub async fn wait(
    engine: &Engine,
    service: &Service,
    container: &str,
    limit: Duration,
    progress: Progress<'_>,
) -> Result<Outcome, EngineError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(50);
    let mut last_report = Instant::now();
    loop {
        let found = engine
            .docker
            .inspect_container(container, None)
            .await
            .map_err(EngineError::docker(format!("inspect {container}")))?;
        let state = found.state.unwrap_or_default();
        let exited = matches!(
            state.status,
            Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD)
        );
        let code = state.exit_code.unwrap_or(-1);
        let detail = match &service.ready {
            Ready::Completed if exited && code == 0 => return Ok(Outcome::Ready),
            _ if exited => {
                let oom = if state.oom_killed == Some(true) {
                    " (killed: out of memory)"
                } else {
                    ""
                };
                return Ok(Outcome::Failed(format!("exited with code {code}{oom}")));
            }
            // A one-shot with retries, between two attempts.
            _ if state.restarting == Some(true) => format!("exited with code {code}; being started again"),
            Ready::Completed => "running (a one-shot: waiting for it to exit 0)".to_string(),
            Ready::Running => return Ok(Outcome::Ready),
            Ready::Healthy(test) => {
                let health = state.health.unwrap_or_default();
                if health.status == Some(HealthStatusEnum::HEALTHY) {
                    return Ok(Outcome::Ready);
                }
                // Docker runs the first check a whole interval after start (dockerd
                // 20.10 has no StartInterval): run the same check now instead.
                if health.status == Some(HealthStatusEnum::STARTING) && check_now(engine, container, test).await {
                    return Ok(Outcome::Ready);
                }
                let last = health
                    .log
                    .and_then(|log| log.last().cloned())
                    .map(|r| {
                        format!(
                            "; last check exit {}: {}",
                            r.exit_code.unwrap_or(-1),
                            r.output.unwrap_or_default().trim()
                        )
                    })
                    .unwrap_or_default();
                format!(
                    "health {}{last}",
                    health.status.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into())
                )
            }
            Ready::Tcp { port, send, expect } => match exchange(*port, send, expect).await {
                Ok(()) => return Ok(Outcome::Ready),
                Err(why) => format!("127.0.0.1:{port}: {why}"),
            },
            Ready::Http { port, path } => {
                let url = format!("http://127.0.0.1:{port}{path}");
                match engine.http.get(&url).send().await {
                    Ok(r) if r.status().as_u16() < 500 => return Ok(Outcome::Ready),
                    Ok(r) => format!("GET {url} answered {}", r.status()),
                    Err(e) => format!("GET {url}: {e}"),
                }
            }
        };
        let waited = started.elapsed();
        if waited >= limit {
            return Ok(Outcome::Failed(format!(
                "was not ready after {}: {detail}",
                humantime::format_duration(Duration::from_secs(limit.as_secs().max(1)))
            )));
        }
        if last_report.elapsed() >= REPORT_EVERY {
            progress(&format!(
                "  waiting for {} ({}s of {}s): {detail}",
                service.name,
                waited.as_secs(),
                limit.as_secs()
            ));
            last_report = Instant::now();
        }
        tokio::time::sleep(backoff.min(limit.saturating_sub(waited))).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Sends `send` to 127.0.0.1:`port` and reads until the answer is as long as `expect`:
/// through Docker's port proxy a connection is accepted before the server listens, so
/// only an answer counts.
async fn exchange(port: u16, send: &[u8], expect: &[u8]) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| e.to_string())?;
        stream.write_all(send).await.map_err(|e| e.to_string())?;
        let mut answer = vec![0u8; expect.len()];
        stream
            .read_exact(&mut answer)
            .await
            .map_err(|e| format!("no answer ({e})"))?;
        if answer == expect {
            Ok(())
        } else {
            Err(format!("answered {:?}", String::from_utf8_lossy(&answer)))
        }
    };
    tokio::time::timeout(CHECK_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err("no answer in time".into()))
}

/// Runs a health check's command in the container (`exec`); true when it exits 0 within
/// the check's timeout. Any failure to run it only means "not yet".
async fn check_now(engine: &Engine, container: &str, test: &[String]) -> bool {
    let cmd = match test.split_first() {
        Some((kind, args)) if kind == "CMD" => args.to_vec(),
        Some((kind, args)) if kind == "CMD-SHELL" => vec!["/bin/sh".into(), "-c".into(), args.join(" ")],
        _ => return false,
    };
    let config = bollard::models::ExecConfig {
        cmd: Some(cmd),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        ..Default::default()
    };
    let Ok(exec) = engine.docker.create_exec(container, config).await else {
        return false;
    };
    let start = bollard::exec::StartExecOptions {
        detach: true,
        ..Default::default()
    };
    if engine.docker.start_exec(&exec.id, Some(start)).await.is_err() {
        return false;
    }
    let deadline = Instant::now() + CHECK_TIMEOUT;
    while Instant::now() < deadline {
        match engine.docker.inspect_exec(&exec.id).await {
            Ok(state) if state.running == Some(false) => return state.exit_code == Some(0),
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(_) => return false,
        }
    }
    false
}
