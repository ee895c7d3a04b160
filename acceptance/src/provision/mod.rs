//! Obtaining a server backend instance, in DESIGN.md's order:
//! 1. an external URL from `PRISM_ACCEPT_<BACKEND>_URL`;
//! 2. a container through testcontainers when a Docker engine answers;
//! 3. a local process when the server binary is on PATH;
//! 4. otherwise an error listing why each way failed (the runner turns it into a skip,
//!    or a failure in strict mode).
//!
//! Every instance is torn down when its [`Instance`](crate::Instance) is dropped.

pub mod container;
pub mod process;

use std::net::SocketAddr;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::{Instance, Provider};

/// How to run one kind of server, by container or by process.
pub struct ServerSpec {
    /// Backend name; the external URL comes from `PRISM_ACCEPT_<NAME>_URL`.
    pub backend: &'static str,
    /// The server binary looked up on PATH for the process provider.
    pub binary: &'static str,
    /// Default container image and tag; overridable with `PRISM_ACCEPT_<NAME>_IMAGE`
    /// (`name:tag`), since images cannot always be pulled.
    pub image: (&'static str, &'static str),
    /// The port the server listens on inside a bridge-networked container.
    pub container_port: u16,
    /// Command-line arguments making the server listen on 127.0.0.1:`port` and keep its
    /// data in `data_dir`.
    pub args: fn(port: u16, data_dir: &str) -> Vec<String>,
    /// The URL clients use for a server at `addr`.
    pub url: fn(addr: SocketAddr) -> String,
    /// Answers true once the server at `addr` serves requests.
    pub ready: fn(addr: SocketAddr) -> BoxFuture<'static, bool>,
    /// Longest wait for `ready`.
    pub start_timeout: Duration,
}

impl ServerSpec {
    fn env(&self, suffix: &str) -> Option<String> {
        std::env::var(format!("PRISM_ACCEPT_{}_{suffix}", self.backend.to_uppercase())).ok()
    }

    pub fn external(&self) -> Option<Instance> {
        self.env("URL").map(|url| Instance {
            provider: Provider::External,
            url: Some(url),
            guard: None,
        })
    }

    /// The image to run: `PRISM_ACCEPT_<NAME>_IMAGE` or the default.
    pub fn image(&self) -> (String, String) {
        match self.env("IMAGE") {
            Some(image) => match image.rsplit_once(':') {
                Some((name, tag)) => (name.to_string(), tag.to_string()),
                None => (image, "latest".to_string()),
            },
            None => (self.image.0.to_string(), self.image.1.to_string()),
        }
    }

    /// Tries every provider in order; the error says why each one did not work.
    pub async fn provision(&'static self) -> anyhow::Result<Instance> {
        if let Some(instance) = self.external() {
            return Ok(instance);
        }
        let mut reasons = Vec::new();
        match container::start(self).await {
            Ok(instance) => return Ok(instance),
            Err(e) => reasons.push(format!("container: {e:#}")),
        }
        match process::start(self).await {
            Ok(instance) => return Ok(instance),
            Err(e) => reasons.push(format!("process: {e:#}")),
        }
        reasons.push(format!(
            "external: PRISM_ACCEPT_{}_URL is not set",
            self.backend.to_uppercase()
        ));
        anyhow::bail!("no way to run {}: {}", self.backend, reasons.join("; "))
    }
}

/// Polls `spec.ready` until it answers or the start timeout passes.
pub async fn wait_ready(spec: &ServerSpec, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + spec.start_timeout;
    while tokio::time::Instant::now() < deadline {
        if (spec.ready)(addr).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("{} at {addr} not ready after {:?}", spec.backend, spec.start_timeout)
}

/// A free TCP port on 127.0.0.1 (the kernel picks; the listener is closed at once).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The servers the harness knows how to run.
pub mod specs {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Every server the provisioning self-test exercises.
    pub static ALL: &[&ServerSpec] = &[&REDIS];

    /// Redis: ready when it answers PING with PONG.
    pub static REDIS: ServerSpec = ServerSpec {
        backend: "redis",
        binary: "redis-server",
        image: ("redis", "7"),
        container_port: 6379,
        args: |port, dir| {
            [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                dir,
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        },
        url: |addr| format!("redis://{addr}"),
        ready: |addr| {
            Box::pin(async move {
                let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                    return false;
                };
                if stream.write_all(b"*1\r\n$4\r\nPING\r\n").await.is_err() {
                    return false;
                }
                let mut reply = [0u8; 7];
                matches!(
                    tokio::time::timeout(Duration::from_secs(1), stream.read_exact(&mut reply)).await,
                    Ok(Ok(_)) if &reply == b"+PONG\r\n"
                )
            })
        },
        start_timeout: Duration::from_secs(20),
    };
}
