//! The container provider, through testcontainers.
//!
//! Two network modes: the default (Docker's bridge with a mapped port, as on a laptop),
//! and `PRISM_ACCEPT_DOCKER_NETWORK=host` (CI here): host networking with the server told
//! a free port on its command line, so no traffic leaves loopback.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{GenericImage, ImageExt};

use super::{ServerSpec, free_port, wait_ready};
use crate::{Instance, Provider};

/// Whether a Docker engine can be reached at all (so a missing one is reported as such,
/// not as a failed container start).
pub fn engine_configured() -> bool {
    std::env::var_os("DOCKER_HOST").is_some() || std::path::Path::new("/var/run/docker.sock").exists()
}

pub async fn start(spec: &ServerSpec) -> anyhow::Result<Instance> {
    anyhow::ensure!(
        engine_configured(),
        "no Docker engine (no DOCKER_HOST, no /var/run/docker.sock)"
    );
    let (name, tag) = spec.image();
    let host_network = std::env::var("PRISM_ACCEPT_DOCKER_NETWORK").is_ok_and(|n| n == "host");
    // The readiness probe below decides; the container is just asked to start.
    let image = GenericImage::new(name.clone(), tag.clone()).with_wait_for(WaitFor::millis(50));
    let (image, host_port) = if host_network {
        (image, free_port()?)
    } else {
        (image.with_exposed_port(spec.container_port.tcp()), 0)
    };
    let mut request = image
        .with_label("dev.prism.acceptance", spec.backend)
        .with_startup_timeout(Duration::from_secs(30));
    for (key, value) in spec.container_env {
        request = request.with_env_var(*key, *value);
    }
    request = if host_network {
        request
            .with_network("host")
            .with_cmd((spec.container_args)("127.0.0.1", host_port))
    } else {
        request.with_cmd((spec.container_args)("0.0.0.0", spec.container_port))
    };
    let container = request
        .start()
        .await
        .with_context(|| format!("starting image {name}:{tag}"))?;
    let port = if host_network {
        host_port
    } else {
        container.get_host_port_ipv4(spec.container_port.tcp()).await?
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(spec, addr).await?;
    Ok(Instance {
        provider: Provider::Container,
        url: Some((spec.url)(addr)),
        addr: Some(addr),
        guard: Some(Box::new(container)),
    })
}
