//! The `devstack` binary's commands against the real engine, where the real images are
//! absent (they cannot be pulled here): `doctor` reports the engine and the negotiated
//! API version, `up --pull never` names the missing image and exits 1, `status -o json`
//! lists every service and exits 3 while the stack is down, `logs` of an unknown service
//! names the known ones, and bad arguments exit 2 with clap's usage message.

mod support;

use std::process::Command;

fn devstack(state: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(["--project", &format!("dst-cli-{}", std::process::id())])
        .args(args)
        .env("DEVSTACK_STATE_DIR", state)
        .output()
        .expect("run devstack");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn commands_report_clearly_and_exit_with_codes_scripts_can_trust() {
    let state = tempfile::tempdir().unwrap();
    let (code, out, err) = devstack(state.path(), &["doctor"]);
    if out.contains("FAIL  engine") {
        support::skip(&format!("no Docker engine: {out}{err}"));
        return;
    }
    assert!(out.contains("ok    engine     Docker "), "{out}");
    assert!(
        out.contains("this client talks 1."),
        "negotiated API version shown: {out}"
    );
    // The real images are not present here: a warning, not a failure.
    assert!(out.contains("warn  image      ghcr.io/dexidp/dex:"), "{out}");
    assert_eq!(code, 0, "{out}{err}");
    let identity = devstack::identity::Identity::path(state.path());
    assert!(!identity.exists(), "doctor only looks: no identity made");

    let (code, _, err) = devstack(state.path(), &["up", "--only", "dex", "--pull", "never"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("image ghcr.io/dexidp/dex:") && err.contains("service dex") && err.contains("--pull never"),
        "{err}"
    );
    assert!(identity.exists(), "up made the developer identity");

    let (code, out, _) = devstack(state.path(), &["status", "-o", "json"]);
    assert_eq!(code, 3, "not up: exit 3");
    let status: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let services = status.as_array().unwrap();
    assert_eq!(services.len(), 7);
    assert!(services.iter().all(|s| s["state"] == "missing"), "{out}");

    // Nothing answers as Dex: `env` refuses rather than turn on checks against nothing.
    let (code, out, err) = devstack(state.path(), &["env"]);
    assert_eq!(code, 3, "{err}");
    assert!(out.is_empty(), "nothing to eval: {out}");
    assert!(err.contains("Dex does not answer") && err.contains("--force"), "{err}");
    let (code, out, _) = devstack(state.path(), &["env", "--force"]);
    assert_eq!(code, 0);
    assert!(out.contains("export PRISM_OIDC_ISSUER="), "{out}");
    // `-o` as for `status`.
    let (code, out, _) = devstack(state.path(), &["env", "--force", "-o", "dotenv"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l.starts_with("PRISM_OIDC_ISSUER=")), "{out}");

    let (code, _, err) = devstack(state.path(), &["logs", "nginx"]);
    assert_eq!(code, 1);
    assert!(err.contains("nginx") && err.contains("dex, zookeeper"), "{err}");

    // Rendering onto a file: its cause, once.
    let file = state.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (code, _, err) = devstack(state.path(), &["render", "--out", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.matches("Not a directory").count(), 1, "{err}");

    // Names Docker refuses and ports two services would share are usage errors.
    let (code, _, err) = devstack(state.path(), &["status", "--project", "My Stack"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--project") && err.contains("lowercase letters"), "{err}");
    let (code, _, err) = devstack(state.path(), &["doctor", "--dex-port", "4317"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--dex-port 4317 is also --otlp-grpc-port"), "{err}");

    let (code, _, err) = devstack(state.path(), &["up", "--pull", "sometimes"]);
    assert_eq!(code, 2, "usage error");
    assert!(err.contains("--pull") && err.contains("missing"), "{err}");
    let (code, _, err) = devstack(state.path(), &["up", "--only", "grafana", "--pull", "never"]);
    assert_eq!(code, 1);
    assert!(err.contains("grafana") && err.contains("signoz"), "{err}");

    let (code, _, err) = devstack(state.path(), &["down"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("nothing to remove"), "{err}");
}
