//! What the end-to-end tests share: running the `loadtest` binary, writing scenario files.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::Path;
use std::process::Command;

/// The `loadtest` binary with `args` and `env`, and no other `OTEL_*` variables: the
/// test's shell may have some (`devstack env` sets them), which would turn on export.
fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_loadtest"));
    command.args(args);
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("OTEL_")) {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    command
}

/// Runs `command`: exit code, stdout, stderr.
fn output(mut command: Command) -> (Option<i32>, String, String) {
    let out = command.output().expect("run loadtest");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the `loadtest` binary: exit code, stdout, stderr.
pub fn loadtest(args: &[&str]) -> (Option<i32>, String, String) {
    output(command(args, &[]))
}

/// Writes `text` to `dir/name`; returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

/// Runs `scenario` with `--out dir/out --quiet`: exit code, stdout, stderr, and the
/// run.json when one was written.
pub fn run(scenario: &str, dir: &Path) -> (Option<i32>, String, String, Option<serde_json::Value>) {
    run_with_env(scenario, dir, &[])
}

/// As [`run`], with `env` set (and no other `OTEL_*` variable).
pub fn run_with_env(
    scenario: &str,
    dir: &Path,
    env: &[(&str, &str)],
) -> (Option<i32>, String, String, Option<serde_json::Value>) {
    let out = dir.join("out");
    let (code, stdout, stderr) = output(command(
        &["run", scenario, "--out", out.to_str().unwrap(), "--quiet"],
        env,
    ));
    let run = std::fs::read(out.join("run.json"))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap());
    (code, stdout, stderr, run)
}

/// Runs the server `serve` makes of a listener on a free loopback port, on a runtime of
/// its own thread (the test's thread is not async); returns the port's address.
pub fn serve_on_own_thread<F, Fut>(serve: F) -> std::net::SocketAddr
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move { serve(tokio::net::TcpListener::from_std(listener).unwrap()).await });
    });
    addr
}
