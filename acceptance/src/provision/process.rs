//! The process provider: the server binary (from PATH or the spec's folders) on a free
//! port with a temporary data folder; killed (and the folder removed) when the instance
//! is dropped.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context;

use super::{ServerSpec, free_port, wait_ready};
use crate::{Instance, Provider};

/// A child process killed (and reaped) when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Keeps the child and its data folder; drop kills and removes them (the child first).
struct ProcessGuard {
    _child: KillOnDrop,
    _data: tempfile::TempDir,
}

/// Finds `binary` on PATH.
pub fn which(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(binary))
        .find(|p| p.is_file())
}

/// Finds the spec's binary on PATH, then in its extra folders (glob patterns; the
/// highest version wins).
pub fn find(spec: &ServerSpec) -> Option<PathBuf> {
    which(spec.binary).or_else(|| {
        spec.binary_dirs.iter().find_map(|pattern| {
            let mut dirs: Vec<PathBuf> = glob_dirs(pattern);
            dirs.sort();
            dirs.into_iter()
                .rev()
                .map(|d| d.join(spec.binary))
                .find(|p| p.is_file())
        })
    })
}

/// Expands one `*` path component (enough for `/usr/lib/postgresql/*/bin`).
fn glob_dirs(pattern: &str) -> Vec<PathBuf> {
    let Some((head, tail)) = pattern.split_once("/*/") else {
        return vec![PathBuf::from(pattern)];
    };
    std::fs::read_dir(head)
        .map(|entries| entries.flatten().map(|e| e.path().join(tail)).collect())
        .unwrap_or_default()
}

/// Looks up a user's uid and gid in /etc/passwd.
fn user_ids(user: &str) -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&user) && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .with_context(|| format!("no user {user} in /etc/passwd"))
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// A command for `binary`, run as `user` when we are root (servers such as PostgreSQL
/// refuse to run as root).
pub fn command(binary: &Path, user: Option<&str>) -> anyhow::Result<std::process::Command> {
    let mut command = std::process::Command::new(binary);
    if let Some(user) = user.filter(|_| running_as_root()) {
        let (uid, gid) = user_ids(user)?;
        command.uid(uid).gid(gid);
    }
    Ok(command)
}

/// A server's binary and its data folder, made ready to start (owned by the spec's user,
/// the spec's `prepare` done). The folder is removed when this is dropped.
pub struct Prepared {
    pub binary: PathBuf,
    pub data: tempfile::TempDir,
}

impl Prepared {
    pub fn data_dir(&self) -> String {
        self.data.path().to_string_lossy().into_owned()
    }
}

pub fn prepare(spec: &ServerSpec) -> anyhow::Result<Prepared> {
    let binary = find(spec).with_context(|| format!("{} is not on PATH", spec.binary))?;
    let data = tempfile::tempdir().context("temporary data folder")?;
    if let Some(user) = spec.user.filter(|_| running_as_root()) {
        let (uid, gid) = user_ids(user)?;
        std::os::unix::fs::chown(data.path(), Some(uid), Some(gid))
            .with_context(|| format!("giving {} to {user}", data.path().display()))?;
    }
    if let Some(prepare) = spec.prepare {
        let bin_dir = binary.parent().unwrap_or(Path::new("/"));
        prepare(bin_dir, data.path()).with_context(|| format!("preparing {}", spec.backend))?;
    }
    Ok(Prepared { binary, data })
}

/// Starts the prepared server with `args` (output discarded).
pub fn spawn(spec: &ServerSpec, prepared: &Prepared, args: &[String]) -> anyhow::Result<std::process::Child> {
    command(&prepared.binary, spec.user)?
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", prepared.binary.display()))
}

pub async fn start(spec: &ServerSpec) -> anyhow::Result<Instance> {
    let prepared = prepare(spec)?;
    let port = free_port()?;
    let child = spawn(spec, &prepared, &(spec.args)(port, &prepared.data_dir()))?;
    let guard = ProcessGuard {
        _child: KillOnDrop(child),
        _data: prepared.data,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(spec, addr).await?;
    Ok(Instance {
        provider: Provider::Process,
        url: Some((spec.url)(addr)),
        addr: Some(addr),
        guard: Some(Box::new(guard)),
    })
}
