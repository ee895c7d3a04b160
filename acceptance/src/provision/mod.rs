//! Obtaining a server backend instance, in this order (the one acceptance/README.md
//! documents):
//! 1. an external URL from `PRISM_ACCEPT_<BACKEND>_URL`;
//! 2. a container through testcontainers when a Docker engine answers;
//! 3. a local process when the server binary is on PATH;
//! 4. otherwise an error listing why each way failed (the runner turns it into a skip,
//!    or a failure in strict mode).
//!
//! Every instance is torn down when its [`Instance`](crate::Instance) is dropped.

pub mod container;
pub mod process;
pub mod specs;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::{Instance, Provider};

/// How to run one kind of server, by container or by process.
pub struct ServerSpec {
    /// Backend name; the external URL comes from `PRISM_ACCEPT_<NAME>_URL`.
    pub backend: &'static str,
    /// The server binary, looked up on PATH and then in `binary_dirs`.
    pub binary: &'static str,
    /// Where distributions keep the binary off PATH (glob patterns).
    pub binary_dirs: &'static [&'static str],
    /// Run the process as this user when the harness runs as root (some servers refuse
    /// root).
    pub user: Option<&'static str>,
    /// Work before the process starts, given the binary's folder and the data folder
    /// (e.g. `initdb`, writing a config file).
    pub prepare: Option<fn(bin_dir: &Path, data_dir: &Path) -> anyhow::Result<()>>,
    /// Process arguments making the server listen on 127.0.0.1:`port` and keep its data in
    /// `data_dir`.
    pub args: fn(port: u16, data_dir: &str) -> Vec<String>,
    /// Default container image and tag; overridable with `PRISM_ACCEPT_<NAME>_IMAGE`
    /// (`name:tag`), since images cannot always be pulled.
    pub image: (&'static str, &'static str),
    /// Environment for the container.
    pub container_env: &'static [(&'static str, &'static str)],
    /// The port the server listens on inside a bridge-networked container.
    pub container_port: u16,
    /// Container arguments making the server listen on `host`:`port` (127.0.0.1 and a
    /// free port with host networking; 0.0.0.0 and `container_port` on a bridge).
    pub container_args: fn(host: &str, port: u16) -> Vec<String>,
    /// The URL clients use for a server at `addr`.
    pub url: fn(addr: SocketAddr) -> String,
    /// Answers true once the server at `addr` serves requests.
    pub ready: fn(addr: SocketAddr) -> BoxFuture<'static, bool>,
    /// The server's own version string, asked of the server at `url` (for the report).
    pub version: fn(url: String) -> BoxFuture<'static, anyhow::Result<String>>,
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
            addr: None,
            guard: None,
        })
    }

    /// `PRISM_ACCEPT_<NAME>_PROVIDER=container|process` pins the provider (so CI runs
    /// some backends each way); unset tries container, then process.
    fn pinned(&self) -> anyhow::Result<Option<Provider>> {
        match self.env("PROVIDER").as_deref() {
            None | Some("") => Ok(None),
            Some("container") => Ok(Some(Provider::Container)),
            Some("process") => Ok(Some(Provider::Process)),
            Some(other) => anyhow::bail!(
                "PRISM_ACCEPT_{}_PROVIDER={other}: expected `container` or `process`",
                self.backend.to_uppercase()
            ),
        }
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

    /// Why `provider` is not used for this server, when `PRISM_ACCEPT_<NAME>_PROVIDER`
    /// pins another one.
    pub fn ruled_out(&self, provider: Provider) -> Option<String> {
        match self.pinned() {
            Ok(Some(pinned)) if pinned != provider => Some(format!(
                "PRISM_ACCEPT_{}_PROVIDER={}",
                self.backend.to_uppercase(),
                pinned.as_str()
            )),
            _ => None,
        }
    }

    /// Tries every provider in order; the error says why each one did not work.
    pub async fn provision(&'static self) -> anyhow::Result<Instance> {
        if let Some(instance) = self.external() {
            return Ok(instance);
        }
        let pinned = self.pinned()?;
        let mut reasons = Vec::new();
        if pinned.is_none_or(|p| p == Provider::Container) {
            match container::start(self).await {
                Ok(instance) => return Ok(instance),
                Err(e) => reasons.push(format!("container: {e:#}")),
            }
        }
        if pinned.is_none_or(|p| p == Provider::Process) {
            match process::start(self).await {
                Ok(instance) => return Ok(instance),
                Err(e) => reasons.push(format!("process: {e:#}")),
            }
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

/// `PRISM_ACCEPT_STRICT=1` (CI): a server that cannot be run is a failure, not a skip.
pub fn strict() -> bool {
    std::env::var("PRISM_ACCEPT_STRICT").is_ok_and(|v| v == "1" || v == "true")
}

/// Whether a test needing `spec`'s binary should run: yes when it is installed; in
/// strict mode always (so a missing binary fails); otherwise it prints a skip line that
/// shows even in captured test output.
pub fn binary_or_skip(spec: &ServerSpec) -> bool {
    if process::find(spec).is_some() || strict() {
        return true;
    }
    // Straight to the stderr handle: the test harness captures `eprintln!`, and a skip
    // must show.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: {} is not installed (run ci/install-servers.sh)",
        spec.binary
    );
    false
}

/// A free TCP port on 127.0.0.1 (the kernel picks; the listener is closed at once).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
