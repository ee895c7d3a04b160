//! `devstack up --only dex` end to end, with the REAL Dex (`PRISM_DEVSTACK_DEX_IMAGE`:
//! devstack's pinned version built from its Go module by ci/build-dex.sh) and with a
//! STAND-IN image (`PRISM_DEVSTACK_DEX_STANDIN_IMAGE`, built by ci/build-standins.sh:
//! testkit's `dex-standin`, which serves the users and clients of the Dex config it is
//! given, as `/bin/dex`). The devstack binary renders and mounts Dex's config, starts the
//! container, waits until discovery answers, logs in with the password grant, verifies
//! the token with the proxy's validator and caches it; a second `up` changes nothing;
//! `logs`, `status` and `down --reset` work on it. With the real Dex also the viewer, and
//! `token --device` with a person's part done by `support::browser` on Dex's own pages.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use devstack::identity::{Identity, Who};
use devstack::oidc::Login;
use support::Run;
use support::browser::Browser;

fn env(port: u16, image: &str) -> [(&'static str, String); 2] {
    [
        ("DEVSTACK_DEX_PORT", port.to_string()),
        ("DEVSTACK_IMAGE_DEX", image.to_string()),
    ]
}

fn devstack(state: &Path, project: &str, port: u16, image: &str, args: &[&str]) -> Run {
    support::devstack(state, project, &env(port, image), args)
}

/// A stack of Dex alone, up and logged in, taken down (`down --reset`) when dropped.
struct Dex {
    state: tempfile::TempDir,
    project: String,
    port: u16,
    image: String,
    /// What the first `up` said.
    up: Run,
}

impl Dex {
    /// `up --only dex` with the image `var` names (built by `script`), checked to have
    /// started Dex and logged the developer in with the `prism:admin` group; `None` (a
    /// counted skip) when `var` is not set.
    fn up(var: &str, script: &str, project: &str) -> Option<Dex> {
        let Ok(image) = std::env::var(var) else {
            support::skip(&format!("{var} not set; run {script}"));
            return None;
        };
        let state = tempfile::tempdir().expect("a state folder");
        let project = format!("{project}-{}", std::process::id());
        let port = support::free_port();
        let up = devstack(
            state.path(),
            &project,
            port,
            &image,
            &["up", "--only", "dex", "--pull", "never", "--timeout", "60s"],
        );
        let dex = Dex {
            state,
            project,
            port,
            image,
            up,
        };
        assert_eq!(dex.up.code, 0, "{}", dex.up.stderr);
        assert!(dex.up.stderr.contains("dex ready (created"), "{}", dex.up.stderr);
        assert!(
            dex.up.stderr.contains("logged in as dev@local.prism") && dex.up.stderr.contains("groups prism:admin"),
            "{}",
            dex.up.stderr
        );
        assert!(
            dex.up.stderr.contains("logged in as viewer@local.prism") && dex.up.stderr.contains("groups prism:viewer"),
            "{}",
            dex.up.stderr
        );
        Some(dex)
    }

    fn run(&self, args: &[&str]) -> Run {
        devstack(self.state.path(), &self.project, self.port, &self.image, args)
    }

    /// A second `up` finds everything as it is.
    fn up_again_changes_nothing(&self) {
        let again = self.run(&["up", "--only", "dex", "--pull", "never"]);
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert!(
            again.stderr.contains("dex ready (unchanged") && again.stderr.contains("(0 created or replaced)"),
            "{}",
            again.stderr
        );
    }
}

impl Drop for Dex {
    fn drop(&mut self) {
        self.run(&["down", "--reset"]);
    }
}

/// The real Dex: the same as the stand-in's run below, plus a refresh (the cached ID
/// token spoilt, so `token` must use the refresh token), and the token's own claims: the
/// developer's `groups`, the issuer, the proxy's client among the audiences.
#[test]
fn up_only_dex_with_the_real_dex_logs_in_refreshes_and_a_second_up_changes_nothing() {
    let Some(dex) = Dex::up("PRISM_DEVSTACK_DEX_IMAGE", "ci/build-dex.sh", "dst-real") else {
        return;
    };
    let (run, port) = (|args: &[&str]| dex.run(args), dex.port);
    let env = run(&["env"]);
    assert_eq!(env.code, 0, "Dex answers: {}", env.stderr);
    assert!(
        env.stdout
            .contains(&format!("export PRISM_OIDC_ISSUER='http://127.0.0.1:{port}/dex'")),
        "{}",
        env.stdout
    );
    let logs = run(&["logs", "dex", "--tail", "50"]);
    let pinned = devstack::versions::DEX.rsplit(':').next().unwrap();
    assert!(
        logs.stdout.contains(&format!("dex_version={pinned}")),
        "the real Dex at the pinned version: {}",
        logs.stdout
    );

    // A spoilt ID token: `token` falls back to the refresh grant, against the real Dex.
    let cache = devstack::oidc::token_path(dex.state.path(), Login::Password(Who::Dev));
    let mut cached: serde_json::Value = serde_json::from_slice(&std::fs::read(&cache).unwrap()).unwrap();
    assert!(
        cached["refresh_token"].is_string(),
        "Dex gave a refresh token: {cached}"
    );
    cached["id_token"] = "spoilt.token.here".into();
    std::fs::write(&cache, cached.to_string()).unwrap();
    let token = run(&["token", "--verbose"]);
    assert_eq!(token.code, 0, "{}", token.stderr);
    assert!(token.stderr.contains("refreshed"), "{}", token.stderr);
    let claims = jwt_claims(token.stdout.trim());
    // Dex signs RS256: the proxy's validator (which checked this token) takes it from a
    // real provider, not only the ES256 of the in-test issuer.
    assert_eq!(jwt_part(token.stdout.trim(), 0)["alg"], "RS256");
    assert_eq!(claims["iss"], format!("http://127.0.0.1:{port}/dex"), "{claims}");
    assert_eq!(claims["email"], "dev@local.prism", "{claims}");
    assert!(
        claims["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|g| g == "prism:admin")),
        "{claims}"
    );
    let audiences = claims["aud"].to_string();
    assert!(audiences.contains(devstack::settings::PROXY_CLIENT_ID), "{claims}");
    let again = run(&["token", "--verbose"]);
    assert!(
        again.stderr.contains("cached"),
        "the refreshed token was cached: {}",
        again.stderr
    );

    // The viewer: its own password login, in prism:viewer and not in prism:admin.
    let viewer = run(&["token", "--user", "viewer"]);
    assert_eq!(viewer.code, 0, "{}", viewer.stderr);
    let claims = jwt_claims(viewer.stdout.trim());
    assert_eq!(claims["email"], "viewer@local.prism", "{claims}");
    assert_eq!(claims["groups"], serde_json::json!(["prism:viewer"]), "{claims}");

    device_sign_in_as_the_viewer(&dex);

    dex.up_again_changes_nothing();
    // With Dex down and no token cached, `token` says why (the connection's own cause)
    // and what to do.
    assert_eq!(run(&["down"]).code, 0);
    std::fs::remove_file(&cache).unwrap();
    let logs = run(&["logs", "dex"]);
    assert_eq!(logs.code, 1, "{}", logs.stderr);
    assert!(
        logs.stderr
            .contains(&format!("no container {}-dex: the stack is not up", dex.project))
            && logs.stderr.contains("`devstack up` starts it"),
        "{}",
        logs.stderr
    );
    let refused = run(&["token"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("Connection refused") && refused.stderr.contains("`devstack up --only dex` starts it"),
        "{}",
        refused.stderr
    );
    let down = run(&["down", "--reset"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(!cache.exists(), "down --reset drops the cached token");
}

/// `token --device` against the real Dex: it prints Dex's device page and code and polls;
/// a browser opens the page, sends the code, signs in as the viewer on Dex's password page
/// and sees Dex's success page; the command then prints the viewer's verified token and
/// caches it (a second `token --device` is served from the cache, with no new code).
fn device_sign_in_as_the_viewer(dex: &Dex) {
    let identity = Identity::load(dex.state.path()).unwrap().unwrap();
    let viewer = identity.viewer().expect("a viewer");
    let login = support::DeviceLogin::start(dex.state.path(), &dex.project, &env(dex.port, &dex.image), &["-v"]);
    assert!(
        login
            .page
            .starts_with(&format!("http://127.0.0.1:{}/dex/device", dex.port)),
        "{}",
        login.page
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let browser = Browser::new();
        let page = browser.get(&login.page).await;
        let code = page.form_with("user_code");
        assert!(
            code.fields.contains(&("user_code".into(), login.user_code.clone())),
            "the page has the printed code filled in: {code:?}"
        );
        let page = browser.submit(&code).await;
        let credentials = page
            .form_with("password")
            .set("login", &viewer.email)
            .set("password", &viewer.password);
        let done = browser.submit(&credentials).await;
        assert!(
            done.body.contains("Login Successful"),
            "Dex's success page ({} {}): {}",
            done.status,
            done.url,
            done.body
        );
    });
    let done = login.finish();
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert!(done.stderr.contains("new login"), "{}", done.stderr);
    let claims = jwt_claims(done.stdout.trim());
    assert_eq!(claims["email"], viewer.email, "{claims}");
    assert_eq!(claims["groups"], serde_json::json!(["prism:viewer"]), "{claims}");
    let again = dex.run(&["token", "--device", "-v"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("cached") && !again.stderr.contains("enter the code"),
        "{}",
        again.stderr
    );
    assert_eq!(again.stdout, done.stdout);
}

/// The claims of a JWT, decoded without checking (devstack checked it).
fn jwt_claims(jwt: &str) -> serde_json::Value {
    jwt_part(jwt, 1)
}

/// Part `i` of a JWT (0: header, 1: claims) as JSON.
fn jwt_part(jwt: &str, i: usize) -> serde_json::Value {
    use base64::Engine as _;
    let part = jwt.split('.').nth(i).expect("a JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[test]
fn up_only_dex_with_a_standin_logs_in_and_a_second_up_changes_nothing() {
    let Some(stack) = Dex::up("PRISM_DEVSTACK_DEX_STANDIN_IMAGE", "ci/build-standins.sh", "dst-up") else {
        return;
    };
    let (run, port, up, state) = (|args: &[&str]| stack.run(args), stack.port, &stack.up, &stack.state);
    assert!(
        up.stderr.contains(&format!("issuer:   http://127.0.0.1:{port}/dex")),
        "{}",
        up.stderr
    );
    let cache = devstack::oidc::token_path(state.path(), Login::Password(Who::Dev));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o600);

    let token = run(&["token", "--verbose"]);
    assert_eq!(token.code, 0, "{}", token.stderr);
    assert!(token.stderr.contains("cached"), "{}", token.stderr);
    assert_eq!(token.stdout.trim().split('.').count(), 3, "a JWT: {}", token.stdout);

    stack.up_again_changes_nothing();

    // `status` judges what `up` was asked for: Dex alone, which runs.
    let status = run(&["status", "-o", "json"]);
    assert_eq!(
        status.code, 0,
        "only dex was asked for, and it is up: {}",
        status.stdout
    );
    let all: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let services: Vec<&serde_json::Value> = all.as_array().unwrap().iter().map(|s| &s["service"]).collect();
    assert_eq!(services, ["dex"], "{all}");
    let dex = &all[0];
    assert_eq!(dex["state"], "running", "{dex}");
    assert_eq!(dex["ports"][0], port, "{dex}");
    // Asked about Signoz, which is not up, it says so.
    let signoz = run(&["status", "--only", "signoz"]);
    assert_eq!(signoz.code, 3, "{}", signoz.stdout);

    let logs = run(&["logs", "dex", "--tail", "5"]);
    assert!(
        logs.stdout.contains(&format!("issuer http://127.0.0.1:{port}/dex")),
        "the stand-in read the rendered config: {}",
        logs.stdout
    );

    let down = run(&["down", "--reset"]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(
        down.stderr.contains(&format!("{}-dex", stack.project))
            && down.stderr.contains(&format!("{}-dex-data", stack.project)),
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
