//! What the devstack tests share: strict mode, skips that show, free ports.
#![allow(dead_code)] // each test file uses a part

pub mod browser;

use std::io::{BufRead, Write};

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
    let out = command(state, project, env, args).output().expect("run devstack");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn command(state: &std::path::Path, project: &str, env: &[(&str, String)], args: &[&str]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_devstack"));
    command
        .args(args)
        .env("DEVSTACK_STATE_DIR", state)
        .env("DEVSTACK_PROJECT", project)
        .envs(env.iter().map(|(k, v)| (k, v)));
    command
}

/// `devstack token --device` waiting for a person to sign in.
pub struct DeviceLogin {
    child: std::process::Child,
    /// The page it asks the person to open, with the code filled in.
    pub page: String,
    /// The code it printed.
    pub user_code: String,
    stderr: std::thread::JoinHandle<String>,
}

impl DeviceLogin {
    /// Starts `devstack token --device <extra>` and reads its stderr until it names the
    /// page and the code.
    pub fn start(state: &std::path::Path, project: &str, env: &[(&str, String)], extra: &[&str]) -> DeviceLogin {
        let args: Vec<&str> = ["token", "--device"].iter().chain(extra).copied().collect();
        let mut child = command(state, project, env, &args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start devstack token --device");
        let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr"));
        let (mut seen, mut page, mut user_code) = (String::new(), None, None);
        while page.is_none() || user_code.is_none() {
            let mut line = String::new();
            let read = lines.read_line(&mut line).expect("read stderr");
            assert!(
                read > 0,
                "devstack token --device ended before naming a page and a code: {seen}"
            );
            seen.push_str(&line);
            if let Some(url) = line.trim().strip_prefix("(the code is filled in at ") {
                page = url.split_whitespace().next().map(String::from);
            }
            if let Some(code) = line.trim().strip_prefix("and enter the code ") {
                user_code = Some(code.to_string());
            }
        }
        let stderr = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = std::io::Read::read_to_string(&mut lines, &mut rest);
            seen + &rest
        });
        DeviceLogin {
            child,
            page: page.unwrap_or_default(),
            user_code: user_code.unwrap_or_default(),
            stderr,
        }
    }

    /// Waits for the command to end.
    pub fn finish(self) -> Run {
        let out = self.child.wait_with_output().expect("wait for devstack token --device");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: self.stderr.join().unwrap_or_default(),
        }
    }
}
