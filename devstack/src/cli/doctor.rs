//! `devstack doctor`: can `up` work here?

use std::process::ExitCode;

use devstack::Settings;
use devstack::engine::{Engine, PortUse};

/// Check the engine (reachable, its version and the API version negotiated), its memory
/// (Signoz wants about 4 GB), the host ports and the images. Exits 1 if anything would
/// stop `up`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {}

const SIGNOZ_MEMORY: i64 = 4 * 1024 * 1024 * 1024;

pub async fn run(settings: &Settings, _args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let stack = super::existing_stack(settings)?;
    let mut failed = false;
    let mut line = |status: &str, what: &str, detail: String| {
        failed |= status == "FAIL";
        println!("{status:<5} {what:<10} {detail}");
    };
    let engine = match Engine::connect().await {
        Ok(engine) => engine,
        Err(e) => {
            line("FAIL", "engine", e.to_string());
            return Ok(ExitCode::FAILURE);
        }
    };
    let info = engine.info().await?;
    line(
        "ok",
        "engine",
        format!(
            "Docker {} (API {}, this client talks {}), {} CPUs",
            info.version, info.api_version, info.negotiated, info.cpus
        ),
    );
    let gib = info.memory_bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    if info.memory_bytes >= SIGNOZ_MEMORY {
        line("ok", "memory", format!("{gib:.1} GiB"));
    } else {
        line(
            "warn",
            "memory",
            format!("{gib:.1} GiB; Signoz wants about 4 GiB (`up --only dex` needs far less)"),
        );
    }
    let holders = engine.port_holders().await?;
    for service in &stack.services {
        for port in &service.ports {
            let port = port.published(stack.network);
            match holders.port_use(port) {
                PortUse::Free => line("ok", "port", format!("{port} ({}): free", service.name)),
                PortUse::Devstack(h) => {
                    let detail = format!(
                        "{port} ({}): held by {} (project {}, already up)",
                        service.name, h.container, h.project
                    );
                    line("ok", "port", detail);
                }
                PortUse::Other => {
                    let detail = format!(
                        "{port} ({}): in use by another program; free it or pass another port",
                        service.name
                    );
                    line("FAIL", "port", detail);
                }
            }
        }
    }
    for service in &stack.services {
        if engine.has_image(&service.image).await? {
            line("ok", "image", format!("{} present", service.image));
        } else {
            line(
                "warn",
                "image",
                format!(
                    "{} missing: `up` pulls it (DEVSTACK_IMAGE_* names a mirror)",
                    service.image
                ),
            );
        }
    }
    match devstack::state::ensure_private_dir(&settings.state_dir) {
        Ok(()) => line("ok", "state", format!("{} (0700)", settings.state_dir.display())),
        Err(e) => line("FAIL", "state", e.to_string()),
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
