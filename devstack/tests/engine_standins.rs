//! The Docker driver against a real engine, with STAND-IN images: Dex and Signoz images
//! cannot be pulled on these machines, so services here are a static busybox
//! (`PRISM_DEVSTACK_STANDIN_IMAGE`, built by ci/install-servers.sh) running small shell
//! scripts that behave like the real ones: a server that becomes healthy after a while,
//! a one-shot migration that needs it, an app that needs the migration's output.
//!
//! Covered: dependency order and health waits, idempotent `up`, recreate on change, a
//! failing one-shot (exit code, log tail, what came up), a health timeout, port
//! conflicts (another program; our own running stack), `--pull never`, `down` keeping
//! volumes and `down --reset` removing them.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Mutex;
use std::time::Duration;

use devstack::NetworkMode;
use devstack::engine::up::Action;
use devstack::engine::{Engine, EngineError, PullPolicy, State, UpOptions};
use devstack::stack::{Port, Ready, Service, Stack, VolumeMount};

/// The engine and the stand-in image, or a skip.
async fn engine() -> Option<(Engine, String)> {
    let image = std::env::var("PRISM_DEVSTACK_STANDIN_IMAGE").unwrap_or_else(|_| "prism-local/busybox:1.35".into());
    let engine = match Engine::connect().await {
        Ok(e) => e,
        Err(e) => {
            support::skip(&format!("no Docker engine ({e}); run ci/install-servers.sh as root"));
            return None;
        }
    };
    if !engine.has_image(&image).await.expect("inspect image") {
        support::skip(&format!(
            "stand-in image {image} missing; run ci/install-servers.sh as root"
        ));
        return None;
    }
    Some((engine, image))
}

fn network() -> NetworkMode {
    match std::env::var("DEVSTACK_NETWORK").as_deref() {
        Ok("host") => NetworkMode::Host,
        _ => NetworkMode::Bridge,
    }
}

/// A stand-in service running `script` in busybox's sh.
fn standin(image: &str, name: &str, script: String, ready: Ready) -> Service {
    let mut s = Service::new(name, "standin", image.into());
    s.command = vec!["sh".into(), "-c".into(), script];
    s.ready = ready;
    s.timeout = Duration::from_secs(30);
    s
}

/// An HTTP server on `port` after `delay` seconds (busybox httpd), with a health check.
fn server(image: &str, name: &str, port: u16, delay: u32) -> Service {
    let script = format!(
        "echo {name} starting; sleep {delay}; mkdir -p /tmp/www && echo ok > /tmp/www/index.html && echo {name} serving; exec httpd -f -p {port} -h /tmp/www"
    );
    let health = Ready::Healthy(
        [
            "CMD",
            "wget",
            "-q",
            "-O",
            "/dev/null",
            &format!("http://127.0.0.1:{port}/"),
        ]
        .map(String::from)
        .to_vec(),
    );
    let mut s = standin(image, name, script, health);
    s.ports = vec![Port::same(port)];
    s
}

/// db (healthy after 1 s) ← migrate (one-shot: fails if db is not serving; records its
/// run in the data volume) ← app (fails unless the migration ran; serves on its port).
fn three_tier(project: &str, image: &str, db_port: u16, app_port: u16, network: NetworkMode) -> Stack {
    let db = server(image, "db", db_port, 1);
    let db_host = Stack::address(network, "db");
    let mut migrate = standin(
        image,
        "migrate",
        format!(
            "wget -q -O /dev/null http://{db_host}:{db_port}/ || {{ echo db not serving; exit 9; }}; echo run >> /data/runs; echo migrated"
        ),
        Ready::Completed,
    );
    migrate.depends_on = vec!["db".into()];
    migrate.volumes = vec![VolumeMount {
        volume: "data".into(),
        target: "/data".into(),
    }];
    let mut app = standin(
        image,
        "app",
        format!(
            "test -f /data/runs || {{ echo no migration; exit 8; }}; mkdir -p /tmp/www && cp /data/runs /tmp/www/runs; exec httpd -f -p {app_port} -h /tmp/www"
        ),
        Ready::Http {
            port: app_port,
            path: "/runs".into(),
        },
    );
    app.depends_on = vec!["migrate".into()];
    app.ports = vec![Port::same(app_port)];
    app.volumes = migrate.volumes.clone();
    Stack {
        project: project.into(),
        network,
        services: vec![db, migrate, app],
        files: Vec::new(),
    }
}

fn options(dir: &tempfile::TempDir) -> UpOptions {
    UpOptions {
        pull: PullPolicy::Never,
        timeout: Duration::from_secs(60),
        ..UpOptions::new(dir.path().to_path_buf())
    }
}

/// Collects progress lines.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Lines {
    fn push(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
}

/// Removes the project's containers, network and volumes even when the test fails.
struct Cleanup(Engine, Stack);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (engine, stack) = (self.0.clone(), self.1.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(engine.down(&stack, true))
        })
        .join();
    }
}

fn project(name: &str) -> String {
    format!("dst-{name}-{}", std::process::id())
}

async fn http_get(port: u16, path: &str) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .expect("GET")
        .text()
        .await
        .expect("body")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standins_start_in_order_and_a_second_up_changes_nothing() {
    let Some((engine, image)) = engine().await else { return };
    let (db_port, app_port) = (support::free_port(), support::free_port());
    let mut stack = three_tier(&project("order"), &image, db_port, app_port, network());
    let _cleanup = Cleanup(engine.clone(), stack.clone());
    let dir = tempfile::tempdir().unwrap();
    let lines = Lines::default();

    let report = engine.up(&stack, &options(&dir), &|l| lines.push(l)).await.expect("up");
    let order: Vec<&str> = report.services.iter().map(|(s, ..)| s.as_str()).collect();
    assert_eq!(order, ["db", "migrate", "app"]);
    assert!(
        report.services.iter().all(|(_, a, _)| *a == Action::Created),
        "{report:?}"
    );
    // migrate exits 9 unless db serves, and db waits 1 s first: the wait was real.
    assert!(
        report.services[0].2 >= Duration::from_millis(900),
        "db became healthy after its 1 s delay"
    );
    assert_eq!(http_get(app_port, "/runs").await, "run\n", "the app saw one migration");
    let status = engine.status(&stack).await.unwrap();
    assert_eq!(status[0].state, State::Running);
    assert_eq!((status[1].state.clone(), status[1].exit_code), (State::Exited, Some(0)));
    assert_eq!(status[0].health.as_deref(), Some("healthy"));
    // Services come back after a reboot or a Docker restart; the one-shot is not re-run.
    let policy = |service: &str| {
        let out = std::process::Command::new("docker")
            .args(["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}"])
            .arg(stack.container_name(service))
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(policy("db"), "unless-stopped");
    assert_eq!(policy("app"), "unless-stopped");
    assert_eq!(policy("migrate"), "no");

    // Again: nothing changes, the migration does not run again.
    let report = engine
        .up(&stack, &options(&dir), &|l| lines.push(l))
        .await
        .expect("up again");
    assert!(
        report.services.iter().all(|(_, a, _)| *a == Action::Unchanged),
        "{report:?}"
    );
    assert_eq!(http_get(app_port, "/runs").await, "run\n");

    // A changed definition replaces that service only.
    stack.services[2].env.push(("FEATURE".into(), "on".into()));
    let report = engine
        .up(&stack, &options(&dir), &|l| lines.push(l))
        .await
        .expect("up after a change");
    assert_eq!(report.action("db"), Some(Action::Unchanged));
    assert_eq!(report.action("migrate"), Some(Action::Unchanged));
    assert_eq!(report.action("app"), Some(Action::Recreated));

    // down keeps the data; down --reset removes it.
    let removed = engine.down(&stack, false).await.unwrap();
    for service in ["db", "migrate", "app"] {
        assert!(removed.contains(&stack.container_name(service)), "{removed:?}");
    }
    assert!(
        engine
            .status(&stack)
            .await
            .unwrap()
            .iter()
            .all(|s| s.state == State::Missing)
    );
    engine
        .up(&stack, &options(&dir), &|l| lines.push(l))
        .await
        .expect("up after down");
    assert_eq!(
        http_get(app_port, "/runs").await,
        "run\nrun\n",
        "the volume survived down"
    );
    let removed = engine.down(&stack, true).await.unwrap();
    assert!(removed.contains(&stack.volume_name("data")), "{removed:?}");
    engine
        .up(&stack, &options(&dir), &|l| lines.push(l))
        .await
        .expect("up after reset");
    assert_eq!(
        http_get(app_port, "/runs").await,
        "run\n",
        "down --reset removed the volume"
    );
    let lines = lines.0.lock().unwrap();
    assert!(
        lines.iter().any(|l| l.starts_with("db ready")),
        "progress shown: {lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standin_one_shot_failure_shows_its_log_tail_and_what_came_up() {
    let Some((engine, image)) = engine().await else { return };
    let mut stack = three_tier(
        &project("fail"),
        &image,
        support::free_port(),
        support::free_port(),
        network(),
    );
    stack.services[1].command[2] =
        "echo applying 001_init; echo 'applying 002_spans: table spans already exists'; exit 3".into();
    let _cleanup = Cleanup(engine.clone(), stack.clone());
    let dir = tempfile::tempdir().unwrap();
    let err = engine
        .up(&stack, &options(&dir), &|_| {})
        .await
        .expect_err("the one-shot fails");
    let EngineError::ServiceFailed(failure) = &err else {
        panic!("{err}")
    };
    assert_eq!(failure.service, "migrate");
    assert_eq!(failure.reason, "exited with code 3");
    assert_eq!(failure.came_up, ["db"]);
    assert_eq!(failure.not_started, ["app"]);
    assert_eq!(
        failure.log_tail,
        ["applying 001_init", "applying 002_spans: table spans already exists"]
    );
    let shown = err.to_string();
    assert!(
        shown.contains("table spans already exists") && shown.contains("came up: db"),
        "{shown}"
    );
    // app was never created.
    let status = engine.status(&stack).await.unwrap();
    assert_eq!(status[2].state, State::Missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standin_health_timeout_names_the_last_check() {
    let Some((engine, image)) = engine().await else { return };
    let port = support::free_port();
    let mut never = server(&image, "never", port, 0);
    // The check asks the wrong port: never healthy.
    never.ready = Ready::Healthy(
        ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:1/"]
            .map(String::from)
            .to_vec(),
    );
    never.timeout = Duration::from_secs(3);
    let stack = Stack {
        project: project("timeout"),
        network: network(),
        services: vec![never],
        files: Vec::new(),
    };
    let _cleanup = Cleanup(engine.clone(), stack.clone());
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let err = engine
        .up(&stack, &options(&dir), &|_| {})
        .await
        .expect_err("never healthy");
    let EngineError::ServiceFailed(failure) = &err else {
        panic!("{err}")
    };
    assert!(
        failure.reason.starts_with("was not ready after 3s"),
        "{}",
        failure.reason
    );
    assert!(
        failure.log_tail.iter().any(|l| l == "never serving"),
        "{:?}",
        failure.log_tail
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "gave up at the service's limit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standin_port_conflicts_name_the_port_and_the_holder() {
    let Some((engine, image)) = engine().await else { return };
    let dir = tempfile::tempdir().unwrap();

    // Another program holds the port: nothing is created.
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let stack = Stack {
        project: project("conflict-a"),
        network: network(),
        services: vec![server(&image, "web", port, 0)],
        files: Vec::new(),
    };
    let _cleanup_a = Cleanup(engine.clone(), stack.clone());
    let err = engine.up(&stack, &options(&dir), &|_| {}).await.expect_err("port held");
    match &err {
        EngineError::PortInUse {
            port: p,
            service,
            holder,
        } => {
            assert_eq!((*p, service.as_str()), (port, "web"));
            assert!(holder.contains("another program"), "{holder}");
        }
        other => panic!("{other}"),
    }
    assert_eq!(engine.status(&stack).await.unwrap()[0].state, State::Missing);
    drop(held);

    // Our own stack holds it: the message says it is already running.
    engine
        .up(&stack, &options(&dir), &|_| {})
        .await
        .expect("up once the port is free");
    let mut other = stack.clone();
    other.project = project("conflict-b");
    let _cleanup_b = Cleanup(engine.clone(), other.clone());
    let err = engine
        .up(&other, &options(&dir), &|_| {})
        .await
        .expect_err("port held by us");
    let shown = err.to_string();
    assert!(
        shown.contains(&format!("host port {port}"))
            && shown.contains(&stack.container_name("web"))
            && shown.contains("already running"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_image_with_pull_never_is_named() {
    let Some((engine, image)) = engine().await else { return };
    let mut service = server(&image, "ghost", support::free_port(), 0);
    service.image = "prism-local/no-such-image:0".into();
    let stack = Stack {
        project: project("pull"),
        network: network(),
        services: vec![service],
        files: Vec::new(),
    };
    let dir = tempfile::tempdir().unwrap();
    let err = engine
        .up(&stack, &options(&dir), &|_| {})
        .await
        .expect_err("image missing");
    assert!(
        matches!(&err, EngineError::ImageMissing { service, image } if service == "ghost" && image == "prism-local/no-such-image:0"),
        "{err}"
    );
    assert!(err.to_string().contains("--pull never"), "{err}");
}

/// A one-shot that fails on its first run and succeeds on its second (a counter in its
/// volume), the way a migrator fails while ClickHouse settles.
fn flaky_one_shot(project: &str, image: &str, retries: u32) -> Stack {
    let mut once = standin(
        image,
        "migrate",
        "echo try >> /data/tries; test $(wc -l < /data/tries) -ge 2 || { echo not yet; exit 7; }; echo migrated".into(),
        Ready::Completed,
    );
    once.volumes = vec![VolumeMount {
        volume: "data".into(),
        target: "/data".into(),
    }];
    once.retries = retries;
    Stack {
        project: project.into(),
        network: network(),
        services: vec![once],
        files: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_shot_with_retries_is_started_again_after_a_failure() {
    let Some((engine, image)) = engine().await else { return };
    let dir = tempfile::tempdir().unwrap();

    let stack = flaky_one_shot(&project("retry"), &image, 2);
    let _cleanup = Cleanup(engine.clone(), stack.clone());
    engine
        .up(&stack, &options(&dir), &|_| {})
        .await
        .expect("the second attempt succeeds");
    let status = engine.status(&stack).await.unwrap();
    assert_eq!((status[0].state.clone(), status[0].exit_code), (State::Exited, Some(0)));

    // Without retries the first failure is the result, with its exit code.
    let stack = flaky_one_shot(&project("noretry"), &image, 0);
    let _cleanup = Cleanup(engine.clone(), stack.clone());
    let err = engine.up(&stack, &options(&dir), &|_| {}).await.unwrap_err();
    let EngineError::ServiceFailed(failure) = &err else {
        panic!("{err}")
    };
    assert!(failure.reason.contains("exited with code 7"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volume_of_an_older_image_stops_up_until_reset_or_upgrade() {
    let Some((engine, image)) = engine().await else { return };
    let dir = tempfile::tempdir().unwrap();
    // Another "version" of the same server: the stand-in under a second tag.
    let newer = format!("{}-newer", image);
    let tagged = std::process::Command::new("docker")
        .args(["tag", &image, &newer])
        .status()
        .expect("docker tag");
    assert!(tagged.success());

    let mut stack = flaky_one_shot(&project("volver"), &image, 2);
    let _cleanup = Cleanup(engine.clone(), stack.clone());
    let first = engine.up(&stack, &options(&dir), &|_| {}).await.expect("first up");
    let volume = stack.volume_name("data");
    assert_eq!(first.volumes[&volume].image, image, "{:?}", first.volumes);

    // The pinned image moved on: refused before anything is touched, naming the volume,
    // both versions and the two ways out.
    stack.services[0].image = newer.clone();
    let with_records = UpOptions {
        volumes: first.volumes.clone(),
        ..options(&dir)
    };
    let err = engine.up(&stack, &with_records, &|_| {}).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, EngineError::OlderVolumes(_)), "{message}");
    for part in [
        volume.as_str(),
        image.as_str(),
        newer.as_str(),
        "down --reset",
        "--upgrade",
    ] {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
    let status = engine.status(&stack).await.unwrap();
    assert_eq!(status[0].exit_code, Some(0), "the old container was left alone");

    // --upgrade goes ahead and records the new version; the next up is not refused.
    let upgrade = UpOptions {
        upgrade: true,
        ..with_records.clone()
    };
    let lines = Lines::default();
    let upgraded = engine.up(&stack, &upgrade, &|l| lines.push(l)).await.expect("upgrade");
    assert_eq!(upgraded.volumes[&volume].image, newer);
    assert!(
        lines
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.starts_with("upgrading: volume"))
    );
    let again = UpOptions {
        volumes: upgraded.volumes.clone(),
        ..options(&dir)
    };
    engine.up(&stack, &again, &|_| {}).await.expect("up after the upgrade");

    // A reset volume is a new volume: its old record does not apply.
    engine.down(&stack, true).await.unwrap();
    stack.services[0].image = image.clone();
    engine
        .up(&stack, &again, &|_| {})
        .await
        .expect("a fresh volume is not judged by an old record");
    let _ = std::process::Command::new("docker").args(["rmi", &newer]).status();
}
