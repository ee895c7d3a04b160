//! `prism-conformance` as a plugin author runs it: against an out-of-tree endpoint (a
//! prism-proxy started here, serving memstore, reached over a real socket by the binary
//! in its own process), with JUnit XML read back by an independent parser
//! (`junit-parser`), the matrix's provenance in `compliance.json`, a target that cannot
//! describe itself or disagrees with its registry file failing the run, usage errors
//! exiting 2, and each built-in server's own version string in the report.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use prism_proxy::config::{BackendConfig, Config, NamespaceConfig};
use prism_proxy::server::RunningProxy;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn conformance(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_prism-conformance"))
        .args(args)
        .output()
        .expect("run prism-conformance");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A proxy with `default` (memstore, every interface) and `kv-only` (memstore, two
/// key-value interfaces), on a free port.
async fn proxy() -> RunningProxy {
    let mut kv_only = NamespaceConfig::new(BackendConfig::memstore());
    kv_only.interfaces = Some(vec![
        prism_proxy::Interface::KeyvalueBasic,
        prism_proxy::Interface::KeyvalueTtl,
    ]);
    let mut config = Config::ephemeral(vec![
        ("default".to_string(), NamespaceConfig::new(BackendConfig::memstore())),
        ("kv-only".to_string(), kv_only),
    ]);
    config.drain_timeout = Duration::from_secs(2);
    prism_proxy::server::start(&config).await.unwrap()
}

fn registry(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("registry")
        .join(format!("{name}.yaml"))
        .display()
        .to_string()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_tree_endpoint_gets_every_suite_it_serves_and_junit_a_parser_reads() {
    let proxy = proxy().await;
    let endpoint = proxy.grpc_addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let (reports, junit) = (dir.path().join("report"), dir.path().join("conformance.xml"));
    let memstore = registry("memstore");
    let run = tokio::task::spawn_blocking({
        let args: Vec<String> = [
            "--endpoint",
            &endpoint,
            "--registry",
            &memstore,
            "--name",
            "my-plugin",
            "--junit",
            junit.to_str().unwrap(),
            "--report-dir",
            reports.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        move || conformance(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);

    // Every trial is a JUnit test case; the one capability the endpoint was not told it
    // has (the proxy's limits) is a skip with its reason.
    let file = std::fs::File::open(&junit).unwrap();
    let parsed = junit_parser::from_reader(std::io::BufReader::new(file)).unwrap();
    assert_eq!(parsed.suites.len(), 1);
    let suite = &parsed.suites[0];
    assert_eq!(suite.name, "my-plugin");
    let listed = conformance(&["--endpoint", &endpoint, "--name", "my-plugin", "--list"]);
    let trials = listed.stdout.lines().filter(|l| l.ends_with(": test")).count();
    assert_eq!(suite.cases.len(), trials, "one case per trial:\n{}", listed.stdout);
    assert!(trials > 40, "{}", listed.stdout);
    let skipped: Vec<_> = suite.cases.iter().filter(|c| c.status.is_skipped()).collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert_eq!(skipped[0].original_name, "keyvalue_basic::value_at_limit_and_just_over");
    assert_eq!(skipped[0].classname.as_deref(), Some("my-plugin"));
    let reason = &skipped[0].status.skipped_as_ref().message;
    assert!(reason.contains("enforces_limits"), "{reason}");
    assert!(
        suite
            .cases
            .iter()
            .all(|c| !c.status.is_failure() && !c.status.is_error())
    );

    // What a reader needs to trust the rows.
    let report = json(&reports.join("compliance.json"));
    assert_eq!(report["suite_version"], env!("CARGO_PKG_VERSION"));
    let commit = report["harness_commit"].as_str().unwrap();
    assert!(
        commit == "unknown" || commit.chars().all(|c| c.is_ascii_hexdigit()),
        "{commit}"
    );
    assert!(report["date"].as_str().unwrap().starts_with("20"), "{report}");
    let target = &report["targets"]["my-plugin"];
    assert_eq!(target["described"]["backend"], "memstore", "{report}");
    assert_eq!(target["described"]["interfaces"].as_array().unwrap().len(), 7);
    assert_eq!(target["url"], format!("http://{endpoint}"));
    let markdown = std::fs::read_to_string(reports.join("compliance.md")).unwrap();
    assert!(markdown.contains("| my-plugin | external | 8 / 0 / 1 |"), "{markdown}");

    // Told it has the proxy's limits, the skipped case runs (and passes).
    let run = tokio::task::spawn_blocking({
        let (endpoint, reports) = (endpoint.clone(), dir.path().join("limits"));
        move || {
            conformance(&[
                "--endpoint",
                &endpoint,
                "--capabilities",
                "enforces_limits",
                "--report-dir",
                reports.to_str().unwrap(),
                "--exact",
                "grpc_endpoint::keyvalue_basic::value_at_limit_and_just_over",
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("1 passed; 0 failed; 0 ignored"), "{}", run.stdout);
    proxy.drain(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_cannot_describe_itself_or_disagrees_with_its_claim_fails() {
    let proxy = proxy().await;
    let endpoint = proxy.grpc_addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let run_in = |name: &str, extra: &[&str]| {
        let mut args: Vec<String> = vec![
            "--endpoint".into(),
            endpoint.clone(),
            "--report-dir".into(),
            dir.path().join(name).display().to_string(),
            "--junit".into(),
            dir.path().join(format!("{name}.xml")).display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        move || conformance(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    // No such namespace: before, 0 tests and exit 0; now one failure saying why.
    let unknown = tokio::task::spawn_blocking(run_in("unknown", &["--namespace", "nope"]))
        .await
        .unwrap();
    assert_eq!(unknown.code, 1, "{}\n{}", unknown.stdout, unknown.stderr);
    assert!(
        unknown.stdout.contains("grpc_endpoint::describes_itself")
            && unknown.stdout.contains("DescribeNamespace")
            && unknown.stdout.contains("\"nope\""),
        "{}",
        unknown.stdout
    );
    let file = std::fs::File::open(dir.path().join("unknown.xml")).unwrap();
    let parsed = junit_parser::from_reader(std::io::BufReader::new(file)).unwrap();
    assert_eq!(parsed.failures, 1, "{parsed:?}");

    // Serving two interfaces while the registry file claims seven.
    let memstore = registry("memstore");
    let narrow = tokio::task::spawn_blocking(run_in("narrow", &["--namespace", "kv-only", "--registry", &memstore]))
        .await
        .unwrap();
    assert_eq!(narrow.code, 1, "{}", narrow.stdout);
    assert!(
        narrow
            .stdout
            .contains("`implements` lists keyvalue_scan, which the server does not declare"),
        "{}",
        narrow.stdout
    );
    // Nothing listens there at all.
    let gone = tokio::task::spawn_blocking({
        let report = dir.path().join("gone").display().to_string();
        move || conformance(&["--endpoint", "127.0.0.1:1", "--report-dir", &report])
    })
    .await
    .unwrap();
    assert_eq!(gone.code, 1, "{}", gone.stdout);
    assert!(gone.stdout.contains("127.0.0.1:1: cannot describe"), "{}", gone.stdout);
    proxy.drain(Duration::from_secs(2)).await;
}

/// `prism-conformance --list | true`: the reader closes the pipe before the list is
/// written; the list ends there without a panic, exit 0 (libtest-mimic alone panicked,
/// exit 101).
#[test]
fn a_list_nobody_reads_ends_quietly() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_prism-conformance"))
        .args(["--backend", "memstore", "--list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r").display().to_string();
    let nothing = conformance(&["--backend", "memstore", "--report-dir", &report, "no-such-trial"]);
    assert_eq!(nothing.code, 2, "{}{}", nothing.stdout, nothing.stderr);
    assert!(
        nothing.stderr.contains("no trial matches \"no-such-trial\""),
        "{}",
        nothing.stderr
    );

    let capability = conformance(&["--endpoint", "127.0.0.1:1", "--capabilities", "ttl_remaining,teleport"]);
    assert_eq!(capability.code, 2);
    assert!(
        capability.stderr.contains("--capabilities") && capability.stderr.contains("ttl_remaining"),
        "{}",
        capability.stderr
    );
    let backend = conformance(&["--backend", "mongodb", "--list"]);
    assert_eq!(backend.code, 2);
    assert!(
        backend.stderr.contains("--backend mongodb") && backend.stderr.contains("redis"),
        "{}",
        backend.stderr
    );

    let bad = dir.path().join("plugin.yaml");
    std::fs::write(&bad, "backend: x\nimplements: [keyvalue_basic, teleport]\n").unwrap();
    let registry = conformance(&["--endpoint", "127.0.0.1:1", "--registry", bad.to_str().unwrap()]);
    assert_eq!(registry.code, 2);
    assert!(
        registry.stderr.contains("--registry") && registry.stderr.contains("plugin.yaml"),
        "{}",
        registry.stderr
    );
    // --replay: a history runs once against one target.
    let history = dir.path().join("history.json");
    std::fs::write(
        &history,
        r#"{"model": "queue", "ops": ["enqueue", {"receive": 1}, {"nack": 0}, {"receive": 1}, {"ack": 0}]}"#,
    )
    .unwrap();
    let replayed = conformance(&["--backend", "memstore", "--replay", history.to_str().unwrap()]);
    assert_eq!(replayed.code, 0, "{}{}", replayed.stdout, replayed.stderr);
    assert!(
        replayed.stdout.contains("no divergence from the model on memstore"),
        "{}",
        replayed.stdout
    );
    let two = conformance(&["--backend", "memstore,redis", "--replay", history.to_str().unwrap()]);
    assert_eq!(two.code, 2);
    assert!(two.stderr.contains("one target"), "{}", two.stderr);
    std::fs::write(&history, r#"{"model": "graph", "ops": []}"#).unwrap();
    let unknown = conformance(&["--backend", "memstore", "--replay", history.to_str().unwrap()]);
    assert_eq!(unknown.code, 2);
    assert!(unknown.stderr.contains("unknown model \"graph\""), "{}", unknown.stderr);

    let orphan = conformance(&["--namespace", "x"]);
    assert_eq!(orphan.code, 2, "--namespace needs --endpoint: {}", orphan.stderr);
}

/// Each server the run started reports its own version: what a matrix row was run
/// against. Servers this machine cannot provision are skips (failures in strict mode).
#[test]
fn the_report_names_each_servers_own_version() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r");
    let run = conformance(&[
        "--backend",
        "memstore,redis,postgres,nats,clickhouse",
        "--report-dir",
        report.to_str().unwrap(),
        "--skip",
        "proxy::",
        "--skip",
        "provisioning::",
        "range_bounds_are_exact",
    ]);
    // Only the time-series suite has that case: memstore and clickhouse.
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let run_kv = conformance(&[
        "--latency",
        "--backend",
        "redis,postgres,nats",
        "--report-dir",
        dir.path().join("kv").to_str().unwrap(),
        "--skip",
        "proxy::",
        "overwrite_replaces",
    ]);
    assert_eq!(run_kv.code, 0, "{}\n{}", run_kv.stdout, run_kv.stderr);
    let mut targets = json(&report.join("compliance.json"))["targets"].clone();
    let kv_report = json(&dir.path().join("kv").join("compliance.json"));
    let kv = kv_report["targets"].clone();
    // --latency: each operation timed directly and through the proxy (recorded only).
    let latency = kv_report["latency"].as_array().unwrap();
    for target in kv.as_object().unwrap().keys() {
        for via in [target.clone(), format!("proxy -> {target}")] {
            let get = latency
                .iter()
                .find(|l| l["target"] == via.as_str() && l["operation"] == "keyvalue.get")
                .unwrap_or_else(|| panic!("no keyvalue.get for {via}: {kv_report}"));
            assert!(
                get["calls"].as_u64().unwrap() > 0 && get["p99_us"].as_u64() >= get["p50_us"].as_u64(),
                "{get}"
            );
        }
    }
    for (name, info) in kv.as_object().unwrap() {
        targets[name] = info.clone();
    }
    let expect = [
        ("memstore", "prism-proxy "),
        ("redis", "redis "),
        ("postgres", "PostgreSQL "),
        ("nats", "nats-server "),
        ("clickhouse", "clickhouse "),
    ];
    for (backend, prefix) in expect {
        let Some(version) = targets[backend]["server_version"].as_str() else {
            let strict = acceptance::provision::strict();
            assert!(!strict, "strict mode: {backend} was not provisioned: {targets}");
            // Straight to the stderr handle: the harness captures `eprintln!`, and a
            // skip must show.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("SKIPPED: {backend} not provisioned here (run ci/install-servers.sh)\n").as_bytes(),
            );
            continue;
        };
        assert!(
            version.starts_with(prefix) && version.chars().any(|c| c.is_ascii_digit()),
            "{backend}: {version}"
        );
    }
}
