//! What the benchmark examples share: a `prism-proxy` process in front of a backend, and
//! CPU accounting of the processes a measurement involves.

// Each example uses part of this module.
#![allow(dead_code)]

use std::time::Duration;

use acceptance::provision::process;
use anyhow::Context;
use prism_proxy::Interface;
use prism_proxy::backends::Backend;
use prism_proxy::client::PrismClient;

/// How the proxy process runs: `--proxy-runtime current-thread` (one thread, the best
/// on two cores shared with the load and the server) or `multi-thread` with
/// `--proxy-workers` threads (0: one per CPU).
#[derive(clap::Args, Debug, Clone)]
pub struct ProxyRuntime {
    /// The proxy's runtime: current-thread or multi-thread.
    #[arg(long, default_value = "current-thread")]
    pub proxy_runtime: String,
    /// Worker threads with --proxy-runtime multi-thread (0: tokio's default, one per CPU).
    #[arg(long, default_value_t = 1)]
    pub proxy_workers: usize,
}

impl ProxyRuntime {
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--runtime".to_string(), self.proxy_runtime.clone()];
        if self.proxy_runtime == "multi-thread" && self.proxy_workers > 0 {
            args.extend(["--worker-threads".to_string(), self.proxy_workers.to_string()]);
        }
        args
    }

    /// For the report: how the proxy ran.
    pub fn describe(&self) -> String {
        match self.proxy_runtime.as_str() {
            "multi-thread" if self.proxy_workers > 0 => format!("multi-thread, {} worker(s)", self.proxy_workers),
            other => other.to_string(),
        }
    }
}

/// A `prism-proxy` process (the binary next to this example's folder), killed on drop.
pub struct ProxyProcess {
    child: process::KillOnDrop,
    _dir: tempfile::TempDir,
}

impl ProxyProcess {
    pub fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

/// A `prism-proxy` process serving `backend_yaml` as namespace `bench` (with
/// `limits_yaml`, if any, as its limits), and a client for it. A separate process, as
/// deployed: the proxy does not share the generator's threads.
pub async fn proxy_for(
    runtime: &ProxyRuntime,
    backend_yaml: &str,
    limits_yaml: Option<&str>,
    interfaces: &[Interface],
) -> anyhow::Result<(ProxyProcess, Backend)> {
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|examples| examples.parent())
        .map(|profile| profile.join("prism-proxy"))
        .context("locating prism-proxy")?;
    anyhow::ensure!(
        bin.is_file(),
        "{} not found: build prism-proxy with the same profile",
        bin.display()
    );
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("proxy.yaml");
    let port = acceptance::provision::free_port()?;
    let limits = limits_yaml.map(|l| format!("    limits: {l}\n")).unwrap_or_default();
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{port}\nadmin_listen: 127.0.0.1:0\nnamespaces:\n  bench:\n    backend: {backend_yaml}\n{limits}"
        ),
    )?;
    let child = std::process::Command::new(&bin)
        .arg("--config")
        .arg(&path)
        .args(runtime.args())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let proxy = ProxyProcess {
        child: process::KillOnDrop(child),
        _dir: dir,
    };
    let endpoint = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        // Direct: one HTTP/2 connection driven by this task's runtime, without tonic's
        // Channel and its buffer task (as loadtest sends): the cheapest gRPC client here.
        if let Ok(client) = PrismClient::connect_direct(&endpoint, "bench").await
            && client.describe().await.is_ok()
        {
            return Ok((proxy, client.backend(interfaces)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("prism-proxy did not answer on {endpoint}")
}

/// CPU seconds (user + system, all threads) process `pid` has used so far; 0 when it
/// cannot be read.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The pid of a running process (not this one) whose command line contains each of
/// `needles`, the lowest if several do (a parent before its children).
pub fn pid_of(needles: &[&str]) -> Option<u32> {
    let me = std::process::id();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            (pid != me && needles.iter().all(|n| cmdline.contains(n))).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids.first().copied()
}

/// What a process (with its threads and child processes) has used so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// CPU seconds, user + system.
    pub cpu: f64,
    /// Times a thread gave up the CPU to wait (each is a wake-up later): `voluntary_ctxt_switches`.
    pub waits: u64,
    /// Times a thread was preempted: `nonvoluntary_ctxt_switches`.
    pub preempted: u64,
}

impl std::ops::Sub for Usage {
    type Output = Usage;
    fn sub(self, before: Usage) -> Usage {
        Usage {
            cpu: self.cpu - before.cpu,
            waits: self.waits.saturating_sub(before.waits),
            preempted: self.preempted.saturating_sub(before.preempted),
        }
    }
}

/// The usage of process `pid` and its threads, and with `tree` of its children too (live
/// ones, and the ones it has reaped, whose CPU counts in its `cutime`: PostgreSQL's
/// backends); zero when it cannot be read.
pub fn usage(pid: u32, tree: bool) -> Usage {
    let mut total = Usage::default();
    let children = if tree { descendants(pid) } else { Vec::new() };
    for pid in std::iter::once(pid).chain(children) {
        total.cpu += cpu_seconds(pid) + if tree { reaped_children_cpu(pid) } else { 0.0 };
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let field = |name: &str| -> u64 {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0)
            };
            total.waits += field("voluntary_ctxt_switches:");
            total.preempted += field("nonvoluntary_ctxt_switches:");
        }
    }
    total
}

fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after.split_whitespace().map(str::to_string).collect()
}

fn reaped_children_cpu(pid: u32) -> f64 {
    let fields = stat_fields(pid);
    let ticks: f64 = [13, 14]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / clock_ticks()
}

/// Every live descendant of `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let parents: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| {
                    let child: u32 = e.file_name().to_str()?.parse().ok()?;
                    let parent: u32 = stat_fields(child).get(1)?.parse().ok()?;
                    Some((child, parent))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, parent)| *parent == p)
                .map(|(child, _)| *child),
        );
        i += 1;
    }
    found.remove(0);
    found
}
