//! `auth: oidc` against an in-test OIDC issuer (discovery document and JWKS served over
//! HTTP, ES256 keys made for the test): valid tokens pass; missing, expired,
//! wrong-audience, wrong-issuer, badly signed and `alg: none` tokens get UNAUTHENTICATED;
//! groups decide namespaces (PERMISSION_DENIED); a rotated key is fetched once on first
//! sight of its key id.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use oidc_test_issuer::{SigningKey, TestIssuer, now, unsigned_token};
use prism_proxy::BackendError;
use prism_proxy::auth::OidcConfig;
use prism_proxy::client::PrismClient;
use prism_proxy::config::{AuthMode, BackendConfig, Config, NamespaceConfig};
use prism_proxy::interfaces::KeyValueBasic;
use serde_json::json;

const AUDIENCE: &str = "prism-proxy";

/// A proxy with namespace `admin` (group prism:admin only) and `open` (any caller).
async fn proxy(issuer: &str) -> prism_proxy::server::RunningProxy {
    let mut admin = NamespaceConfig::new(BackendConfig::memstore());
    admin.groups = Some(vec!["prism:admin".into()]);
    let open = NamespaceConfig::new(BackendConfig::memstore());
    let mut config = Config::ephemeral([("open".to_string(), open), ("admin".to_string(), admin)]);
    config.auth = AuthMode::Oidc(OidcConfig {
        issuer: issuer.to_string(),
        audience: AUDIENCE.to_string(),
        groups_claim: "groups".into(),
        leeway: Duration::from_secs(30),
    });
    prism_proxy::server::start(&config).await.expect("proxy")
}

/// A get in `namespace` with `token` (none when empty).
async fn get(proxy: &prism_proxy::server::RunningProxy, namespace: &str, token: &str) -> Result<(), BackendError> {
    let mut client = PrismClient::connect(&format!("http://{}", proxy.grpc_addr), namespace).await?;
    if !token.is_empty() {
        client = client.with_metadata("authorization", &format!("Bearer {token}"))?;
    }
    client.get(Bytes::from("k")).await.map(drop)
}

fn unauthenticated(r: Result<(), BackendError>, what: &str) {
    assert!(matches!(r, Err(BackendError::Unauthenticated(_))), "{what}: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked_and_groups_decide_namespaces() {
    let issuer = TestIssuer::start(Vec::new(), Vec::new()).await;
    let key = issuer.key();
    let claims = |issuer_url: &str, groups: &[&str]| {
        let mut c = issuer.claims(AUDIENCE, groups);
        c["iss"] = json!(issuer_url);
        c
    };
    let url = issuer.url().to_string();
    let proxy = proxy(&url).await;

    get(&proxy, "admin", &key.sign(&claims(&url, &["prism:admin"])))
        .await
        .expect("a valid token of the admin group");
    get(&proxy, "open", &key.sign(&claims(&url, &[])))
        .await
        .expect("any caller in `open`");
    let denied = get(&proxy, "admin", &key.sign(&claims(&url, &["dev"]))).await;
    assert!(matches!(denied, Err(BackendError::PermissionDenied(_))), "{denied:?}");

    unauthenticated(get(&proxy, "open", "").await, "no token");
    let mut expired = claims(&url, &["prism:admin"]);
    expired["exp"] = json!(now() - 120);
    unauthenticated(get(&proxy, "open", &key.sign(&expired)).await, "expired");
    let mut in_leeway = claims(&url, &[]);
    in_leeway["exp"] = json!(now() - 5);
    get(&proxy, "open", &key.sign(&in_leeway))
        .await
        .expect("expired 5 s ago, within the 30 s leeway");
    let mut audience = claims(&url, &[]);
    audience["aud"] = json!("someone-else");
    unauthenticated(get(&proxy, "open", &key.sign(&audience)).await, "wrong audience");
    unauthenticated(
        get(&proxy, "open", &key.sign(&claims("https://evil.example", &[]))).await,
        "wrong issuer",
    );
    // Signed by a key the issuer never published, under the published key's id.
    let forger = SigningKey::generate(&key.kid);
    unauthenticated(
        get(&proxy, "open", &forger.sign(&claims(&url, &[]))).await,
        "bad signature",
    );
    let none = unsigned_token(&key.kid, &claims(&url, &["prism:admin"]));
    unauthenticated(get(&proxy, "admin", &none).await, "alg none");
    unauthenticated(get(&proxy, "open", "not-a-jwt").await, "garbage");

    // The keys were fetched once for all of that.
    let fetches = || issuer.counters().jwks.load(Ordering::SeqCst);
    assert_eq!(fetches(), 1, "JWKS fetches");

    // Rotation: a new key appears; its first token makes the proxy fetch the keys again.
    let rotated = issuer.rotate("k2");
    tokio::time::sleep(Duration::from_secs(5)).await; // past the refresh rate limit
    get(&proxy, "admin", &rotated.sign(&claims(&url, &["prism:admin"])))
        .await
        .expect("a token of the rotated key");
    assert_eq!(fetches(), 2, "one fetch for the new key id");
    // Unknown key ids do not make the proxy hammer the issuer.
    for _ in 0..5 {
        unauthenticated(
            get(&proxy, "open", &SigningKey::generate("nope").sign(&claims(&url, &[]))).await,
            "unknown key id",
        );
    }
    assert!(fetches() <= 3, "fetches are rate limited");
    proxy.drain(Duration::from_secs(2)).await;
}

#[test]
fn oidc_settings_from_the_environment_are_validated() {
    let vars = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    };
    let mut config = Config::single_memstore("open");
    config.apply_env(vars(&[])).expect("nothing set");
    assert_eq!(config.auth, AuthMode::None);

    let err = config
        .apply_env(vars(&[("PRISM_OIDC_ISSUER", "http://127.0.0.1:5556/dex")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("PRISM_OIDC_AUDIENCE") && err.contains("required"), "{err}");
    let err = config
        .apply_env(vars(&[
            ("PRISM_OIDC_ISSUER", "dex.local"),
            ("PRISM_OIDC_AUDIENCE", "p"),
        ]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("PRISM_OIDC_ISSUER") && err.contains("http(s) URL"),
        "{err}"
    );

    config
        .apply_env(vars(&[
            ("PRISM_OIDC_ISSUER", "http://127.0.0.1:5556/dex"),
            ("PRISM_OIDC_AUDIENCE", AUDIENCE),
        ]))
        .expect("valid");
    let AuthMode::Oidc(oidc) = &config.auth else {
        panic!("{:?}", config.auth)
    };
    assert_eq!(
        (oidc.issuer.as_str(), oidc.audience.as_str()),
        ("http://127.0.0.1:5556/dex", AUDIENCE)
    );
    assert_eq!(oidc.groups_claim, "groups");
}
