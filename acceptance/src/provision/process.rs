//! The process provider: the server binary from PATH on a free port with a temporary
//! data folder; killed (and the folder removed) when the instance is dropped.

use std::net::SocketAddr;
use std::process::Stdio;

use anyhow::Context;

use super::{ServerSpec, free_port, wait_ready};
use crate::{Instance, Provider};

/// Keeps the child and its data folder; drop kills and removes them.
struct ProcessGuard {
    child: std::process::Child,
    _data: tempfile::TempDir,
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds `binary` on PATH.
pub fn which(binary: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

pub async fn start(spec: &ServerSpec) -> anyhow::Result<Instance> {
    let binary = which(spec.binary).with_context(|| format!("{} is not on PATH", spec.binary))?;
    let data = tempfile::tempdir().context("temporary data folder")?;
    let port = free_port()?;
    let args = (spec.args)(port, &data.path().to_string_lossy());
    let child = std::process::Command::new(&binary)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let guard = ProcessGuard { child, _data: data };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(spec, addr).await?;
    Ok(Instance {
        provider: Provider::Process,
        url: Some((spec.url)(addr)),
        guard: Some(Box::new(guard)),
    })
}
