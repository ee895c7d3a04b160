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
        if let Ok(client) = PrismClient::connect(&endpoint, "bench").await
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

/// The pid of the running process whose command line contains `needle`.
pub fn pid_of(needle: &str) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .replace('\0', " ")
            .contains(needle)
            .then_some(pid)
    })
}
