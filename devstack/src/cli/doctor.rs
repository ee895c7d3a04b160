//! `devstack doctor`: can `up` work here?

use std::process::ExitCode;

use devstack::Settings;
use devstack::engine::{Engine, PortUse};

/// Check the engine (which one and why, reachable, its version and the API version
/// negotiated), its memory (Signoz wants about 4 GB), the host ports and the images
/// (present, or their registry reachable). Exits 1 if anything would stop `up`.
#[derive(clap::Args, Debug)]
pub struct DoctorArgs {
    /// Check only this part (`dex`, `signoz`) or service, with what it depends on, as
    /// `up --only` would start it; repeatable.
    #[arg(long, value_name = "PART")]
    only: Vec<String>,
}

const SIGNOZ_MEMORY: i64 = 4 * 1024 * 1024 * 1024;

pub async fn run(settings: &Settings, args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let stack = super::existing_stack(settings)?.only(&args.only)?;
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
    let info = match engine.info().await {
        Ok(info) => info,
        Err(e) => {
            line("FAIL", "engine", format!("{}: {e}", engine.endpoint()));
            return Ok(ExitCode::FAILURE);
        }
    };
    line(
        "ok",
        "engine",
        format!(
            "Docker {} (API {}, this client talks {}), {} CPUs, at {}",
            info.version,
            info.api_version,
            info.negotiated,
            info.cpus,
            engine.endpoint()
        ),
    );
    if !engine.endpoint().is_local() {
        // Ports are published on the engine's host, while the issuer and the proxy's
        // config name 127.0.0.1.
        line(
            "warn",
            "engine",
            format!(
                "{} is not this machine: the stack's ports open there, and tokens name the issuer {} (forward the ports, e.g. ssh -L)",
                engine.endpoint().host,
                settings.issuer()
            ),
        );
    }
    let gib = info.memory_bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    if info.memory_bytes >= SIGNOZ_MEMORY || stack.service("signoz").is_none() {
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
    let mut images: Vec<&str> = stack.services.iter().map(|s| s.image.as_str()).collect();
    let mut seen = std::collections::HashSet::new();
    images.retain(|image| seen.insert(*image));
    let mut missing = Vec::new();
    for image in images {
        if engine.has_image(image).await? {
            line("ok", "image", format!("{image} present"));
        } else {
            missing.push(image);
        }
    }
    // At once: an offline laptop waits out one timeout, not one per image.
    let reached =
        futures::future::join_all(missing.iter().map(|image| engine.reach_registry(image, &info.mirrors))).await;
    for (image, reached) in missing.into_iter().zip(reached) {
        match reached {
            Ok(url) => line(
                "warn",
                "image",
                format!("{image} missing: `up` pulls it ({url} answers)"),
            ),
            Err(why) => line(
                "FAIL",
                "image",
                format!(
                    "{image} missing and its registry cannot be reached ({why}): `up` would stop; `docker load` it, or name a mirror with DEVSTACK_IMAGE_*"
                ),
            ),
        }
    }
    match devstack::state::ensure_private_dir(&settings.state_dir) {
        Ok(()) => line("ok", "state", format!("{} (0700)", settings.state_dir.display())),
        Err(e) => line("FAIL", "state", e.to_string()),
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
