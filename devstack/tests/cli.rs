//! The `devstack` binary's commands against the real engine, where the real images are
//! absent (they cannot be pulled here): `doctor` reports the engine and the negotiated
//! API version, `up --pull never` names the missing image and exits 1, `status -o json`
//! lists every service and exits 3 while the stack is down, `logs` of an unknown service
//! names the known ones, and bad arguments exit 2 with clap's usage message. `doctor`
//! names the engine it talks to (`DOCKER_HOST`, a Docker context) and fails when an image
//! is missing and its registry cannot be reached; the registry that answers is a
//! STAND-IN (a loopback listener answering `/v2/` with 401, as registries do unauthenticated).

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
    // The real images are not present here; whether that stops `up` depends on whether
    // their registry answers, and the exit code follows the lines.
    assert!(
        out.contains("warn  image      ghcr.io/dexidp/dex:") || out.contains("FAIL  image      ghcr.io/dexidp/dex:"),
        "{out}"
    );
    assert_eq!(code, i32::from(out.contains("FAIL ")), "{out}{err}");
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

    // Rendering onto a file: named as the argument, before anything is written.
    let file = state.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let (code, _, err) = devstack(state.path(), &["render", "--out", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--out") && err.contains("a file is there; give a folder"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x", "the file is left alone");

    // Names Docker refuses and ports two services would share are usage errors.
    let (code, _, err) = devstack(state.path(), &["status", "--project", "My Stack"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--project") && err.contains("lowercase letters"), "{err}");
    let (code, _, err) = devstack(state.path(), &["doctor", "--dex-port", "4317"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--dex-port 4317 is also --otlp-grpc-port"), "{err}");

    // The stack options are listed once, in the top-level help; a command's help names
    // them and stays short, and they still parse after the command.
    let (code, top, _) = devstack(state.path(), &["--help"]);
    assert_eq!(code, 0);
    assert!(
        top.contains("Stack options") && top.contains("[env: DEVSTACK_DEX_PORT=]"),
        "{top}"
    );
    let (code, logs, _) = devstack(state.path(), &["logs", "--help"]);
    assert_eq!(code, 0);
    // (clap wraps to the terminal's width, or 100 columns without one)
    let words = logs.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        !logs.contains("DEVSTACK_DEX_PORT=") && words.contains("--dex-port") && words.contains("see `devstack --help`"),
        "{logs}"
    );
    assert!(logs.lines().count() < 20, "{logs}");
    let (code, _, err) = devstack(state.path(), &["logs", "--dex-port", "4317", "dex"]);
    assert_eq!(code, 2, "a stack option after the command is still checked: {err}");

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

/// A STAND-IN registry: answers every request with 401 and `WWW-Authenticate`, as a real
/// registry answers an anonymous `GET /v2/`. Returns its `host:port`.
fn registry_standin() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let address = listener.local_addr().expect("its address").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut request = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut request);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"x\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    address
}

#[test]
fn doctor_names_the_engine_and_whether_missing_images_can_be_pulled() {
    let state = tempfile::tempdir().unwrap();
    let project = format!("dst-doctor-{}", std::process::id());
    let run = |env: &[(&str, String)], args: &[&str]| support::devstack(state.path(), &project, env, args);
    // The engine the tests use: DOCKER_HOST if CI set one, else the default socket.
    let engine = std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
    let probe = run(&[], &["doctor", "--only", "dex"]);
    if probe.stdout.contains("FAIL  engine") {
        support::skip(&format!("no Docker engine: {}{}", probe.stdout, probe.stderr));
        return;
    }

    let gone = run(&[("DOCKER_HOST", "tcp://127.0.0.1:1".into())], &["doctor"]);
    assert_eq!(gone.code, 1, "{}{}", gone.stdout, gone.stderr);
    assert!(
        gone.stdout.contains("FAIL  engine") && gone.stdout.contains("tcp://127.0.0.1:1 (DOCKER_HOST)"),
        "{}",
        gone.stdout
    );

    // The current context of the CLI's config, naming the engine the tests use.
    let config = tempfile::tempdir().unwrap();
    let name = "prism-doctor-test";
    let hash: String = <sha2::Sha256 as sha2::Digest>::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let meta = config.path().join("contexts/meta").join(hash);
    std::fs::create_dir_all(&meta).unwrap();
    let context = serde_json::json!({"Name": name, "Metadata": {}, "Endpoints": {"docker": {"Host": engine, "SkipTLSVerify": false}}});
    std::fs::write(meta.join("meta.json"), context.to_string()).unwrap();
    std::fs::write(
        config.path().join("config.json"),
        format!(r#"{{"currentContext":"{name}"}}"#),
    )
    .unwrap();
    let via_context = run(
        &[
            ("DOCKER_HOST", String::new()),
            ("DOCKER_CONTEXT", String::new()),
            ("DOCKER_CONFIG", config.path().display().to_string()),
        ],
        &["doctor", "--only", "dex"],
    );
    assert!(
        via_context.stdout.contains("ok    engine     Docker ")
            && via_context
                .stdout
                .contains(&format!("at {engine} (Docker context {name})")),
        "{}{}",
        via_context.stdout,
        via_context.stderr
    );
    let missing = run(
        &[
            ("DOCKER_HOST", String::new()),
            ("DOCKER_CONTEXT", "no-such-context".into()),
        ],
        &["doctor"],
    );
    assert_eq!(missing.code, 1);
    assert!(
        missing.stdout.contains("\"no-such-context\" (DOCKER_CONTEXT)"),
        "{}",
        missing.stdout
    );

    // A missing image whose registry does not answer stops `up`: FAIL, exit 1, and how
    // to get it anyway.
    let dex_port = support::free_port().to_string();
    let unreachable = run(
        &[
            ("DEVSTACK_IMAGE_DEX", "127.0.0.1:1/prism/dex:v0".into()),
            ("DEVSTACK_DEX_PORT", dex_port.clone()),
        ],
        &["doctor", "--only", "dex"],
    );
    assert_eq!(unreachable.code, 1, "{}", unreachable.stdout);
    let line = unreachable
        .stdout
        .lines()
        .find(|l| l.starts_with("FAIL  image      127.0.0.1:1/prism/dex:v0 missing"))
        .unwrap_or_else(|| panic!("{}", unreachable.stdout));
    assert!(
        line.contains("http://127.0.0.1:1/v2/") && line.contains("docker load"),
        "{line}"
    );
    // `--only dex` checks Dex alone: no Signoz image, no Signoz port.
    assert!(!unreachable.stdout.contains("signoz"), "{}", unreachable.stdout);

    // One that answers: `up` can pull it, a warning only.
    let registry = registry_standin();
    let reachable = run(
        &[
            ("DEVSTACK_IMAGE_DEX", format!("{registry}/prism/dex:v0")),
            ("DEVSTACK_DEX_PORT", dex_port),
        ],
        &["doctor", "--only", "dex"],
    );
    assert_eq!(reachable.code, 0, "{}", reachable.stdout);
    assert!(
        reachable.stdout.contains(&format!(
            "warn  image      {registry}/prism/dex:v0 missing: `up` pulls it (http://{registry}/v2/ answers)"
        )),
        "{}",
        reachable.stdout
    );
}
