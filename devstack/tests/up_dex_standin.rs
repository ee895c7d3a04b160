//! `devstack up --only dex` end to end with a STAND-IN Dex image
//! (`PRISM_DEVSTACK_DEX_STANDIN_IMAGE`, built by ci/build-standins.sh: testkit's
//! `dex-standin`, which serves the users and clients of the Dex config it is given, as
//! `/bin/dex`). The real binary renders and mounts Dex's config, starts the container,
//! waits until discovery answers, logs in with the password grant, verifies and caches the
//! token; a second `up` changes nothing; `logs`, `status` and `down --reset` work on it.

mod support;

use std::path::Path;
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn devstack(state: &Path, project: &str, port: u16, image: &str, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(args)
        .env("DEVSTACK_STATE_DIR", state)
        .env("DEVSTACK_PROJECT", project)
        .env("DEVSTACK_DEX_PORT", port.to_string())
        .env("DEVSTACK_IMAGE_DEX", image)
        .output()
        .expect("run devstack");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `down --reset` even when the test fails.
struct Down<'a>(&'a Path, &'a str, u16, &'a str);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        devstack(self.0, self.1, self.2, self.3, &["down", "--reset"]);
    }
}

#[test]
fn up_only_dex_with_a_standin_logs_in_and_a_second_up_changes_nothing() {
    let Ok(image) = std::env::var("PRISM_DEVSTACK_DEX_STANDIN_IMAGE") else {
        support::skip("PRISM_DEVSTACK_DEX_STANDIN_IMAGE not set; run ci/build-standins.sh");
        return;
    };
    let state = tempfile::tempdir().unwrap();
    let project = format!("dst-up-{}", std::process::id());
    let port = support::free_port();
    let _down = Down(state.path(), &project, port, &image);
    let run = |args: &[&str]| devstack(state.path(), &project, port, &image, args);

    let up = run(&["up", "--only", "dex", "--pull", "never", "--timeout", "60s"]);
    assert_eq!(up.code, 0, "{}", up.stderr);
    assert!(up.stderr.contains("dex ready (created"), "{}", up.stderr);
    assert!(
        up.stderr.contains("logged in as dev@local.prism") && up.stderr.contains("groups prism:admin"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains(&format!("issuer:   http://127.0.0.1:{port}/dex")),
        "{}",
        up.stderr
    );
    let cache = devstack::oidc::token_path(state.path());
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o600);

    let token = run(&["token", "--verbose"]);
    assert_eq!(token.code, 0, "{}", token.stderr);
    assert!(token.stderr.contains("cached"), "{}", token.stderr);
    assert_eq!(token.stdout.trim().split('.').count(), 3, "a JWT: {}", token.stdout);

    let again = run(&["up", "--only", "dex", "--pull", "never"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("dex ready (unchanged") && again.stderr.contains("(0 created or replaced)"),
        "{}",
        again.stderr
    );

    let status = run(&["status", "-o", "json"]);
    assert_eq!(status.code, 3, "only dex is up");
    let all: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let dex = all.as_array().unwrap().iter().find(|s| s["service"] == "dex").unwrap();
    assert_eq!(dex["state"], "running", "{dex}");
    assert_eq!(dex["ports"][0], port, "{dex}");

    let logs = run(&["logs", "dex", "--tail", "5"]);
    assert!(
        logs.stdout.contains(&format!("issuer http://127.0.0.1:{port}/dex")),
        "the stand-in read the rendered config: {}",
        logs.stdout
    );

    let down = run(&["down", "--reset"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(
        down.stderr.contains(&format!("{project}-dex")) && down.stderr.contains(&format!("{project}-dex-data")),
        "{}",
        down.stderr
    );
    assert!(
        !down.stderr.contains("clickhouse-data"),
        "only what existed is reported: {}",
        down.stderr
    );
    assert!(!cache.exists(), "down --reset drops the cached token");
}
