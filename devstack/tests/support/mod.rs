//! What the devstack tests share: strict mode, skips that show, free ports.
#![allow(dead_code)] // each test file uses a part

use std::io::Write;

/// In CI (`PRISM_ACCEPT_STRICT=1`) a missing engine or image fails instead of skipping.
pub fn strict() -> bool {
    std::env::var("PRISM_ACCEPT_STRICT").is_ok_and(|v| v == "1" || v == "true")
}

/// Prints a skip past the harness's capture, so it shows; panics in strict mode.
pub fn skip(why: &str) {
    assert!(!strict(), "strict mode: cannot run: {why}");
    let _ = writeln!(std::io::stderr(), "SKIPPED: {why}");
}

/// A free TCP port (the kernel picks; the listener is closed at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// What a run of the devstack binary did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the devstack binary with `args`, its state in `state`, project `project` and the
/// extra variables `env` (ports, images).
pub fn devstack(state: &std::path::Path, project: &str, env: &[(&str, String)], args: &[&str]) -> Run {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(args)
        .env("DEVSTACK_STATE_DIR", state)
        .env("DEVSTACK_PROJECT", project)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run devstack");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
