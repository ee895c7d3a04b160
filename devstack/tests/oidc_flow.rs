//! The CLI's OIDC flow against an in-test OIDC issuer served under `/dex` like Dex
//! (discovery, JWKS, password and refresh grants): `devstack token` (the real binary)
//! logs in with the public CLI client, verifies and caches the token 0600, serves it from
//! the cache, refreshes it when it is about to expire, and fails clearly on a wrong
//! password. Then the proxy, configured only from `devstack env`, accepts that token and
//! refuses tampered, expired, wrong-audience, wrong-issuer and `alg: none` tokens with
//! UNAUTHENTICATED.

mod support;

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use devstack::identity::Identity;
use devstack::settings::{CLI_CLIENT_ID, PROXY_CLIENT_ID};
use oidc_test_issuer::{Client, SigningKey, TestIssuer, User, now, unsigned_token};
use prism_proxy::BackendError;
use prism_proxy::client::PrismClient;
use prism_proxy::config::{BackendConfig, Config, NamespaceConfig};
use prism_proxy::interfaces::KeyValueBasic;
use serde_json::json;

async fn issuer_for(identity: &Identity) -> TestIssuer {
    let user = User {
        username: identity.developer.email.clone(),
        password: identity.developer.password.clone(),
        subject: identity.developer.user_id.clone(),
        groups: identity.developer.groups.clone(),
    };
    let clients = vec![
        Client {
            id: CLI_CLIENT_ID.into(),
            secret: None,
        },
        Client {
            id: PROXY_CLIENT_ID.into(),
            secret: Some(identity.proxy_client_secret.clone()),
        },
    ];
    TestIssuer::start_at("/dex", vec![user], clients).await
}

/// Runs the devstack binary; returns (exit code, stdout, stderr).
fn devstack(state: &std::path::Path, issuer: &TestIssuer, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_devstack"))
        .args(args)
        .env("DEVSTACK_STATE_DIR", state)
        .env("DEVSTACK_DEX_PORT", issuer.port().to_string())
        .output()
        .expect("run devstack");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_logs_in_caches_refreshes_and_the_proxy_accepts_it() {
    let state = tempfile::tempdir().unwrap();
    let identity = Identity::load_or_create(state.path()).unwrap();
    let issuer = issuer_for(&identity).await;
    let counters = issuer.counters();
    let grants = || {
        (
            counters.password_grants.load(Ordering::SeqCst),
            counters.refresh_grants.load(Ordering::SeqCst),
        )
    };

    // First: a password login, verified and cached 0600.
    let (code, first, err) = devstack(state.path(), &issuer, &["token", "--verbose"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("new login"), "{err}");
    assert_eq!(grants(), (1, 0));
    let cache = devstack::oidc::token_path(
        state.path(),
        devstack::oidc::Login::Password(devstack::identity::Who::Dev),
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(
        std::fs::metadata(Identity::path(state.path()))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // Again: from the cache, no request to the token endpoint.
    let (code, second, err) = devstack(state.path(), &issuer, &["token", "--verbose"]);
    assert_eq!((code, second.as_str()), (0, first.as_str()), "{err}");
    assert!(err.contains("cached"), "{err}");
    assert_eq!(grants(), (1, 0));

    // Tokens about to expire are refreshed (refresh grant, not the password).
    issuer.set_id_token_ttl(Duration::from_secs(30));
    std::fs::remove_file(&cache).unwrap();
    let (code, short, _) = devstack(state.path(), &issuer, &["token"]);
    assert_eq!(code, 0);
    assert_eq!(grants(), (2, 0));
    issuer.set_id_token_ttl(Duration::from_secs(600));
    let (code, refreshed, err) = devstack(state.path(), &issuer, &["token", "--verbose"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("refreshed"), "{err}");
    assert_eq!(grants(), (2, 1));
    assert_ne!(refreshed, short);

    // The proxy, configured from `devstack env` alone, accepts the token.
    let (code, env, _) = devstack(state.path(), &issuer, &["env", "--format", "dotenv"]);
    assert_eq!(code, 0);
    let vars: std::collections::HashMap<String, String> = env
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(vars["PRISM_OIDC_ISSUER"], issuer.url());
    assert_eq!(vars["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://127.0.0.1:4317");
    let mut admin = NamespaceConfig::new(BackendConfig::memstore());
    admin.groups = Some(vec!["prism:admin".into()]);
    let mut config = Config::ephemeral([("admin".to_string(), admin)]);
    config.apply_env(|name| vars.get(name).cloned()).expect("env applies");
    let proxy = prism_proxy::server::start(&config).await.expect("proxy");
    let get = |token: String| {
        let addr = format!("http://{}", proxy.grpc_addr);
        async move {
            let client = PrismClient::connect(&addr, "admin").await?;
            let client = client.with_metadata("authorization", &format!("Bearer {token}"))?;
            client.get(Bytes::from("k")).await.map(drop)
        }
    };
    get(refreshed.clone()).await.expect("the CLI's token is accepted");

    let unauthenticated = |r: Result<(), BackendError>, what: &str| {
        assert!(matches!(r, Err(BackendError::Unauthenticated(_))), "{what}: {r:?}");
    };
    let valid = || {
        let mut claims = issuer.claims(PROXY_CLIENT_ID, &["prism:admin"]);
        claims["sub"] = json!(identity.developer.user_id);
        claims
    };
    let key = issuer.key();
    get(key.sign(&valid())).await.expect("a freshly signed valid token");
    let mut tampered = refreshed.clone();
    tampered.pop();
    tampered.push(if refreshed.ends_with('A') { 'B' } else { 'A' });
    unauthenticated(get(tampered).await, "bad signature");
    let mut expired = valid();
    expired["exp"] = json!(now() - 600);
    unauthenticated(get(key.sign(&expired)).await, "expired");
    let mut audience = valid();
    audience["aud"] = json!(CLI_CLIENT_ID);
    unauthenticated(get(key.sign(&audience)).await, "wrong audience");
    let mut wrong_issuer = valid();
    wrong_issuer["iss"] = json!("http://127.0.0.1:1/dex");
    unauthenticated(get(key.sign(&wrong_issuer)).await, "wrong issuer");
    unauthenticated(get(SigningKey::generate(&key.kid).sign(&valid())).await, "forged key");
    unauthenticated(get(unsigned_token(&key.kid, &valid())).await, "alg none");
    proxy.drain(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_no_identity_fails_with_a_clear_message() {
    let state = tempfile::tempdir().unwrap();
    let identity = Identity::load_or_create(state.path()).unwrap();
    let mut other = identity.clone();
    other.developer.password = "not-the-password".into();
    let issuer = issuer_for(&other).await;
    let (code, out, err) = devstack(state.path(), &issuer, &["token"]);
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("login refused") && err.contains("invalid_grant"), "{err}");
    assert!(
        !devstack::oidc::token_path(
            state.path(),
            devstack::oidc::Login::Password(devstack::identity::Who::Dev)
        )
        .exists(),
        "nothing cached"
    );

    let empty = tempfile::tempdir().unwrap();
    let (code, _, err) = devstack(empty.path(), &issuer, &["token"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no developer identity") && err.contains("devstack up"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_that_names_itself_differently_is_refused() {
    // Dex's issuer must match byte for byte: a trailing slash is a different issuer.
    let state = tempfile::tempdir().unwrap();
    let identity = Identity::load_or_create(state.path()).unwrap();
    let issuer = issuer_for(&identity).await;
    let client = devstack::oidc::OidcClient::new(&format!("{}/", issuer.url())).unwrap();
    let err = client.discover().await.expect_err("mismatch");
    assert!(matches!(err, devstack::oidc::OidcError::IssuerMismatch { .. }), "{err}");
    assert!(err.to_string().contains("byte for byte"), "{err}");
}
