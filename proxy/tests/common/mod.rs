//! Starts the real `prism-proxy` binary on free loopback ports for end-to-end tests.

#![allow(dead_code)] // each test file uses a different part

pub mod raw_h2;

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use prism_proxy::client::PrismClient;

pub struct Proxy {
    child: Child,
    pub grpc: SocketAddr,
    pub admin: SocketAddr,
    _dir: tempfile::TempDir,
    stderr: Option<std::process::ChildStderr>,
}

/// A config with ports left to the command line.
pub const CONFIG: &str = r#"
drain_timeout: 5s
namespaces:
  default:
    backend: { type: memstore }
  sessions:
    backend: { type: memstore }
    interfaces: [keyvalue_basic, keyvalue_ttl]
    limits: { max_value_bytes: 65536, max_message_bytes: 131072 }
  tiny:
    backend: { type: memstore }
    limits: { max_in_flight: 2 }
"#;

impl Proxy {
    pub fn start(config: &str) -> Proxy {
        Proxy::start_with_args(config, &[])
    }

    /// With extra command-line arguments; `--listen` among them replaces the free port.
    pub fn start_with_args(config: &str, extra: &[&str]) -> Proxy {
        Proxy::start_with_env(config, extra, &[])
    }

    /// With extra environment variables for the proxy process.
    pub fn start_with_env(config: &str, extra: &[&str], env: &[(&str, &str)]) -> Proxy {
        Proxy::spawn(Command::new(env!("CARGO_BIN_EXE_prism-proxy")), config, extra, env)
    }

    /// Under an address-space limit of `bytes` (`prlimit --as`): an allocation past it
    /// aborts the process, so a test sees what a memory-limited container would.
    pub fn start_with_address_limit(config: &str, bytes: u64) -> Proxy {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--as={bytes}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_prism-proxy"));
        Proxy::spawn(command, config, &[], &[])
    }

    fn spawn(mut command: Command, config: &str, extra: &[&str], env: &[(&str, &str)]) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("proxy.yaml");
        std::fs::write(&path, config).expect("write config");
        let mut child = command
            .arg("--config")
            .arg(&path)
            .args(if extra.contains(&"--listen") {
                &[][..]
            } else {
                &["--listen", "127.0.0.1:0"]
            })
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn prism-proxy");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read ready line");
        if !line.starts_with("prism-proxy ready ") {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            panic!("unexpected first line: {line:?}; stderr:\n{stderr}");
        }
        let field = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {name}= in {line:?}"))
        };
        let stderr = child.stderr.take();
        Proxy {
            grpc: field("grpc"),
            admin: field("admin"),
            child,
            _dir: dir,
            stderr,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.grpc)
    }

    pub async fn client(&self, namespace: &str) -> PrismClient {
        PrismClient::connect(&self.endpoint(), namespace)
            .await
            .expect("connect")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's resident memory now, in bytes (from `/proc`).
    pub fn rss(&self) -> u64 {
        self.memory("VmRSS:")
    }

    /// The process's peak resident memory so far (its high-water mark), in bytes.
    pub fn peak_rss(&self) -> u64 {
        self.memory("VmHWM:")
    }

    /// A `/proc/<pid>/status` memory field, in bytes (0 when unreadable).
    fn memory(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024)
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit (panics after `limit`); returns its status and stderr.
    pub fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let mut err = String::new();
                if let Some(mut s) = self.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                return (status, err);
            }
            assert!(start.elapsed() < limit, "proxy did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with `args`; returns (exit code, stderr).
pub fn run_binary(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_prism-proxy"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run prism-proxy");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A plain HTTP/1.1 GET for the admin endpoints; returns (status code, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    prism_proxy::test_util::http_get(addr, path).await.expect("admin GET")
}
