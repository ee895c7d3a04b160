//! `auth: oidc` against an in-test OIDC issuer (discovery document and JWKS served over
//! HTTP, ES256 keys made for the test): valid tokens pass; missing, expired,
//! wrong-audience, wrong-issuer, badly signed and `alg: none` tokens get UNAUTHENTICATED;
//! groups decide namespaces (PERMISSION_DENIED); a rotated key is fetched once on first
//! sight of its key id.

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use oidc_test_issuer::{KeysMode, SigningKey, TestIssuer, now, unsigned_token};
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
    // Auth comes before the namespace is looked up: without a token nothing is revealed.
    let nope = get(&proxy, "nope", "").await;
    assert!(
        matches!(&nope, Err(BackendError::Unauthenticated(m)) if !m.contains("open") && !m.contains("admin")),
        "an unknown namespace without a token: {nope:?}"
    );
    // With one, the unknown namespace is named, and only namespaces the caller may use.
    let nope = get(&proxy, "nope", &key.sign(&claims(&url, &["dev"]))).await;
    assert!(
        matches!(&nope, Err(BackendError::NotFound(m)) if m.contains("open") && !m.contains("admin")),
        "an unknown namespace with a token outside prism:admin: {nope:?}"
    );
    let mut expired = claims(&url, &["prism:admin"]);
    expired["exp"] = json!(now() - 120);
    unauthenticated(get(&proxy, "open", &key.sign(&expired)).await, "expired");
    let mut in_leeway = claims(&url, &[]);
    in_leeway["exp"] = json!(now() - 5);
    get(&proxy, "open", &key.sign(&in_leeway))
        .await
        .expect("expired 5 s ago, within the 30 s leeway");
    let mut not_yet = claims(&url, &[]);
    not_yet["nbf"] = json!(now() + 3600);
    unauthenticated(
        get(&proxy, "open", &key.sign(&not_yet)).await,
        "valid only in an hour (nbf)",
    );
    not_yet["nbf"] = json!(now() + 5);
    get(&proxy, "open", &key.sign(&not_yet))
        .await
        .expect("valid in 5 s, within the 30 s leeway");
    let mut future = claims(&url, &[]);
    future["iat"] = json!(now() + 3600);
    unauthenticated(get(&proxy, "open", &key.sign(&future)).await, "issued in an hour (iat)");
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

/// With the JWKS endpoint hanging and tokens with unknown key ids arriving, tokens whose
/// key is held are served at once: they never wait on the fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_issuer_stalls_no_token_whose_key_is_held() {
    let issuer = TestIssuer::start(Vec::new(), Vec::new()).await;
    let url = issuer.url().to_string();
    let proxy = proxy(&url).await;
    let valid = issuer.key().sign(&issuer.claims(AUDIENCE, &[]));
    get(&proxy, "open", &valid).await.expect("keys fetched");
    issuer.set_keys_mode(KeysMode::Hang);
    tokio::time::sleep(Duration::from_secs(5)).await; // past the refresh rate limit

    // A token with an unknown key id starts a fetch that hangs (until the HTTP timeout).
    let junk = SigningKey::generate("junk").sign(&issuer.claims(AUDIENCE, &[]));
    let stalled = {
        let (endpoint, junk) = (format!("http://{}", proxy.grpc_addr), junk.clone());
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let client = PrismClient::connect(&endpoint, "open").await.unwrap();
            let client = client
                .with_metadata("authorization", &format!("Bearer {junk}"))
                .unwrap();
            let result = client.get(Bytes::from("k")).await;
            (started.elapsed(), result)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        get(&proxy, "open", &valid).await.expect("a token whose key is held");
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (junk_took, junk_result) = stalled.await.unwrap();
    assert!(
        junk_took >= Duration::from_secs(2),
        "the junk token's fetch really hung ({junk_took:?}, {junk_result:?})"
    );
    assert!(
        slowest < junk_took / 2,
        "valid tokens waited on the hung fetch: slowest {slowest:?}, the fetch {junk_took:?}"
    );
    proxy.drain(Duration::from_secs(2)).await;
}

/// With the issuer failing, junk key ids get UNAUTHENTICATED and cause at most one fetch
/// per 5 s, failed fetches included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_refetch_limit_holds_when_the_issuer_fails() {
    let issuer = TestIssuer::start(Vec::new(), Vec::new()).await;
    let url = issuer.url().to_string();
    let proxy = proxy(&url).await;
    let valid = issuer.key().sign(&issuer.claims(AUDIENCE, &[]));
    get(&proxy, "open", &valid).await.expect("keys fetched");
    issuer.set_keys_mode(KeysMode::Fail);
    tokio::time::sleep(Duration::from_secs(5)).await; // past the refresh rate limit
    let fetches = || issuer.counters().jwks.load(Ordering::SeqCst);
    let before = fetches();
    let started = std::time::Instant::now();
    for i in 0..40 {
        let junk = SigningKey::generate(&format!("junk-{i}")).sign(&issuer.claims(AUDIENCE, &[]));
        unauthenticated(get(&proxy, "open", &junk).await, "a junk key id while the issuer fails");
    }
    let windows = started.elapsed().as_secs() / 5 + 1;
    let fetched = (fetches() - before) as u64;
    assert!(fetched >= 1, "the first junk key id was looked for");
    assert!(fetched <= windows, "{fetched} fetches in {:?}", started.elapsed());
    get(&proxy, "open", &valid)
        .await
        .expect("a token whose key is held, issuer down");
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
    let err = config
        .apply_env(vars(&[
            ("PRISM_OIDC_ISSUER", "http://dex.example:5556/dex"),
            ("PRISM_OIDC_AUDIENCE", "p"),
        ]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("only on a loopback host"), "{err}");
    for loopback in [
        "http://localhost:5556/dex",
        "http://[::1]:5556",
        "https://dex.example/dex",
    ] {
        let mut c = Config::single_memstore("open");
        c.apply_env(|name: &str| match name {
            "PRISM_OIDC_ISSUER" => Some(loopback.to_string()),
            "PRISM_OIDC_AUDIENCE" => Some("p".to_string()),
            _ => None,
        })
        .unwrap_or_else(|e| panic!("{loopback}: {e}"));
    }
    let file = "auth: !oidc { issuer: 'http://10.1.2.3/dex', audience: p }\nnamespaces: { a: { backend: { type: memstore } } }\n";
    let err = Config::parse(file, std::path::Path::new("p.yaml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("auth.oidc.issuer") && err.contains("loopback"), "{err}");

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
