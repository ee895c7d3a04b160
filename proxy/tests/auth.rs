//! `auth: oidc` against an in-test OIDC issuer (discovery document and JWKS served over
//! HTTP, ES256 keys made for the test): valid tokens pass; missing, expired,
//! wrong-audience, wrong-issuer, badly signed and `alg: none` tokens get UNAUTHENTICATED;
//! groups decide namespaces (PERMISSION_DENIED); a rotated key is fetched once on first
//! sight of its key id.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use prism_proxy::BackendError;
use prism_proxy::auth::OidcConfig;
use prism_proxy::client::PrismClient;
use prism_proxy::config::{AuthMode, Config, NamespaceConfig};
use prism_proxy::interfaces::KeyValueBasic;
use serde_json::json;

const AUDIENCE: &str = "prism-proxy";

/// A signing key and its public JWK.
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: serde_json::Value,
}

fn signing_key(kid: &str) -> SigningKey {
    let pair = rcgen::KeyPair::generate().expect("P-256 key");
    let point = pair.public_key_raw(); // 0x04 || x || y
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid,
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
    });
    SigningKey {
        kid: kid.to_string(),
        encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).expect("PEM key"),
        jwk,
    }
}

/// The issuer: its published keys can be changed while it runs; JWKS fetches are counted.
struct Issuer {
    url: String,
    keys: Arc<Mutex<Vec<serde_json::Value>>>,
    fetches: Arc<AtomicUsize>,
}

fn json_response(value: serde_json::Value) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
}

async fn issuer() -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let keys: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let fetches = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get({
                let url = url.clone();
                move || async move { json_response(json!({"issuer": url, "jwks_uri": format!("{url}/keys")})) }
            }),
        )
        .route(
            "/keys",
            axum::routing::get({
                let (keys, fetches) = (keys.clone(), fetches.clone());
                move || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    json_response(json!({"keys": *keys.lock().unwrap()}))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Issuer { url, keys, fetches }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn token(key: &SigningKey, claims: serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, &claims, &key.encoding).expect("sign")
}

fn claims(issuer: &str, groups: &[&str]) -> serde_json::Value {
    json!({"iss": issuer, "aud": AUDIENCE, "sub": "dev@local.prism", "exp": now() + 300, "groups": groups})
}

/// A proxy with namespace `admin` (group prism:admin only) and `open` (any caller).
async fn proxy(issuer: &str) -> prism_proxy::server::RunningProxy {
    let mut config = Config::single_memstore("open");
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.admin_listen = "127.0.0.1:0".parse().unwrap();
    config.auth = AuthMode::Oidc(OidcConfig {
        issuer: issuer.to_string(),
        audience: AUDIENCE.to_string(),
        groups_claim: "groups".into(),
        leeway: Duration::from_secs(30),
    });
    let mut admin: NamespaceConfig = config.namespaces["open"].clone();
    admin.groups = Some(vec!["prism:admin".into()]);
    config.namespaces.insert("admin".into(), admin);
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
    let issuer = issuer().await;
    let key = signing_key("k1");
    issuer.keys.lock().unwrap().push(key.jwk.clone());
    let proxy = proxy(&issuer.url).await;

    let admin_token = token(&key, claims(&issuer.url, &["prism:admin"]));
    get(&proxy, "admin", &admin_token)
        .await
        .expect("a valid token of the admin group");
    get(&proxy, "open", &token(&key, claims(&issuer.url, &[])))
        .await
        .expect("any caller in `open`");
    let denied = get(&proxy, "admin", &token(&key, claims(&issuer.url, &["dev"]))).await;
    assert!(matches!(denied, Err(BackendError::PermissionDenied(_))), "{denied:?}");

    unauthenticated(get(&proxy, "open", "").await, "no token");
    let mut expired = claims(&issuer.url, &["prism:admin"]);
    expired["exp"] = json!(now() - 120);
    unauthenticated(get(&proxy, "open", &token(&key, expired)).await, "expired");
    let mut in_leeway = claims(&issuer.url, &[]);
    in_leeway["exp"] = json!(now() - 5);
    get(&proxy, "open", &token(&key, in_leeway))
        .await
        .expect("expired 5 s ago, within the 30 s leeway");
    let mut audience = claims(&issuer.url, &[]);
    audience["aud"] = json!("someone-else");
    unauthenticated(get(&proxy, "open", &token(&key, audience)).await, "wrong audience");
    unauthenticated(
        get(&proxy, "open", &token(&key, claims("https://evil.example", &[]))).await,
        "wrong issuer",
    );
    // Signed by a key the issuer never published, under the published key's id.
    let forger = SigningKey {
        kid: "k1".into(),
        ..signing_key("k1")
    };
    unauthenticated(
        get(&proxy, "open", &token(&forger, claims(&issuer.url, &[]))).await,
        "bad signature",
    );
    // alg: none, no signature.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"k1"}"#),
        URL_SAFE_NO_PAD.encode(claims(&issuer.url, &["prism:admin"]).to_string())
    );
    unauthenticated(get(&proxy, "admin", &none).await, "alg none");
    unauthenticated(get(&proxy, "open", "not-a-jwt").await, "garbage");

    // The keys were fetched once for all of that.
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1, "JWKS fetches");

    // Rotation: a new key appears; its first token makes the proxy fetch the keys again.
    let rotated = signing_key("k2");
    issuer.keys.lock().unwrap().push(rotated.jwk.clone());
    tokio::time::sleep(Duration::from_secs(5)).await; // past the refresh rate limit
    get(&proxy, "admin", &token(&rotated, claims(&issuer.url, &["prism:admin"])))
        .await
        .expect("a token of the rotated key");
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2, "one fetch for the new key id");
    // Unknown key ids do not make the proxy hammer the issuer.
    for _ in 0..5 {
        unauthenticated(
            get(&proxy, "open", &token(&signing_key("nope"), claims(&issuer.url, &[]))).await,
            "unknown key id",
        );
    }
    assert!(issuer.fetches.load(Ordering::SeqCst) <= 3, "fetches are rate limited");
    proxy.drain(Duration::from_secs(2)).await;
}
