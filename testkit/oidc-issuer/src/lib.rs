//! An OpenID Connect issuer for tests, served over real HTTP on an ephemeral port.
//!
//! It does what the proxy and `devstack token` rely on from Dex: the discovery document,
//! the JWKS (ES256 keys made for the test, rotatable, fetches counted), and a token
//! endpoint with the password grant (public clients send no secret) and the refresh
//! grant. Scope `audience:server:client_id:X` puts `X` in the ID token's `aud`, as Dex's
//! cross-client trust does. Tests also sign arbitrary claims to make bad tokens.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Form, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A signing key and its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    encoding: EncodingKey,
    pub jwk: Value,
}

impl SigningKey {
    /// A fresh P-256 key published under `kid`.
    pub fn generate(kid: &str) -> SigningKey {
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

    /// `claims` signed with this key (ES256, `kid` in the header).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// `claims` as an unsigned `alg: none` token naming key `kid`.
pub fn unsigned_token(kid: &str, claims: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT", "kid": kid});
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs() as i64
}

/// A user the password grant accepts.
#[derive(Clone, Debug)]
pub struct User {
    pub username: String,
    /// The password, or its bcrypt hash (`$2b$...`, as in Dex's `staticPasswords`).
    pub password: String,
    pub subject: String,
    pub groups: Vec<String>,
}

/// A client the token endpoint accepts; `secret: None` is a public client.
#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub secret: Option<String>,
}

/// How the JWKS endpoint answers (the issuer's failure modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysMode {
    /// The published keys.
    Serve,
    /// HTTP 500.
    Fail,
    /// Never: the request is accepted and not answered.
    Hang,
}

/// How many times each endpoint was used.
#[derive(Default)]
pub struct Counters {
    pub jwks: AtomicUsize,
    pub password_grants: AtomicUsize,
    pub refresh_grants: AtomicUsize,
}

/// What a refresh token stands for: (subject, groups, the login's scope).
type Session = (String, Vec<String>, String);

struct Inner {
    url: String,
    key: Mutex<SigningKey>,
    published: Mutex<Vec<Value>>,
    users: Vec<User>,
    clients: Vec<Client>,
    id_token_ttl: Mutex<Duration>,
    refresh_tokens: Mutex<HashMap<String, Session>>,
    keys_mode: Mutex<KeysMode>,
    counters: Counters,
}

/// A running issuer; it stops with the test's runtime.
#[derive(Clone)]
pub struct TestIssuer {
    inner: Arc<Inner>,
}

impl TestIssuer {
    /// Starts an issuer at `http://127.0.0.1:<port>` with one published key (`k1`).
    pub async fn start(users: Vec<User>, clients: Vec<Client>) -> TestIssuer {
        TestIssuer::start_at("", users, clients).await
    }

    /// Starts an issuer whose URL ends in `path` (such as Dex's `/dex`).
    pub async fn start_at(path: &str, users: Vec<User>, clients: Vec<Client>) -> TestIssuer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}{path}", listener.local_addr().expect("address"));
        TestIssuer::serve(listener, url, users, clients)
    }

    /// Serves on `listener` as issuer `url` (its path is where the endpoints live).
    pub fn serve(listener: tokio::net::TcpListener, url: String, users: Vec<User>, clients: Vec<Client>) -> TestIssuer {
        let path = url
            .split_once("://")
            .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].trim_end_matches('/').to_string()))
            .unwrap_or_default();
        let key = SigningKey::generate("k1");
        let inner = Arc::new(Inner {
            url,
            published: Mutex::new(vec![key.jwk.clone()]),
            key: Mutex::new(key),
            users,
            clients,
            id_token_ttl: Mutex::new(Duration::from_secs(300)),
            refresh_tokens: Mutex::default(),
            keys_mode: Mutex::new(KeysMode::Serve),
            counters: Counters::default(),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", axum::routing::get(discovery))
            .route("/keys", axum::routing::get(keys))
            .route("/token", axum::routing::post(token))
            .with_state(inner.clone());
        let app = if path.is_empty() {
            app
        } else {
            axum::Router::new().nest(&path, app)
        };
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestIssuer { inner }
    }

    /// The issuer URL, as it appears in `iss`.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        let authority = self.inner.url.trim_start_matches("http://");
        let port = authority.split('/').next().and_then(|a| a.rsplit(':').next());
        port.and_then(|p| p.parse().ok()).expect("port in the issuer URL")
    }

    /// The key tokens are currently signed with.
    pub fn key(&self) -> SigningKey {
        self.inner.key.lock().clone()
    }

    /// Publishes a new key and signs with it from now on (the old one stays published).
    pub fn rotate(&self, kid: &str) -> SigningKey {
        let key = SigningKey::generate(kid);
        self.inner.published.lock().push(key.jwk.clone());
        *self.inner.key.lock() = key.clone();
        key
    }

    /// How long ID tokens issued from now on are valid.
    pub fn set_id_token_ttl(&self, ttl: Duration) {
        *self.inner.id_token_ttl.lock() = ttl;
    }

    /// How the JWKS endpoint answers from now on.
    pub fn set_keys_mode(&self, mode: KeysMode) {
        *self.inner.keys_mode.lock() = mode;
    }

    /// How many times each endpoint was used.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Claims of a valid ID token for `audience` with `groups`.
    pub fn claims(&self, audience: &str, groups: &[&str]) -> Value {
        json!({"iss": self.url(), "aud": audience, "sub": "dev@local.prism", "exp": now() + 300, "groups": groups})
    }
}

fn password_matches(kept: &str, given: &str) -> bool {
    if kept.starts_with("$2") {
        bcrypt::verify(given, kept).unwrap_or(false)
    } else {
        kept == given
    }
}

fn json_response(status: StatusCode, value: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}

async fn discovery(State(inner): State<Arc<Inner>>) -> Response {
    let url = &inner.url;
    json_response(
        StatusCode::OK,
        json!({
            "issuer": url,
            "jwks_uri": format!("{url}/keys"),
            "token_endpoint": format!("{url}/token"),
            "grant_types_supported": ["password", "refresh_token"],
        }),
    )
}

async fn keys(State(inner): State<Arc<Inner>>) -> Response {
    inner.counters.jwks.fetch_add(1, Ordering::SeqCst);
    let mode = *inner.keys_mode.lock();
    match mode {
        KeysMode::Serve => json_response(StatusCode::OK, json!({"keys": *inner.published.lock()})),
        KeysMode::Fail => json_response(StatusCode::INTERNAL_SERVER_ERROR, json!({"error": "down"})),
        KeysMode::Hang => std::future::pending().await,
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    json_response(status, json!({"error": error, "error_description": description}))
}

async fn token(State(inner): State<Arc<Inner>>, Form(form): Form<HashMap<String, String>>) -> Response {
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    let Some(client) = inner.clients.iter().find(|c| c.id == field("client_id")) else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "unknown client");
    };
    if client.secret.as_deref().unwrap_or("") != field("client_secret") {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "bad client credentials");
    }
    let (subject, groups, scope) = match field("grant_type") {
        "password" => {
            inner.counters.password_grants.fetch_add(1, Ordering::SeqCst);
            let user = inner
                .users
                .iter()
                .find(|u| u.username == field("username") && password_matches(&u.password, field("password")));
            match user {
                Some(u) => (u.subject.clone(), u.groups.clone(), field("scope").to_string()),
                None => {
                    return oauth_error(
                        StatusCode::UNAUTHORIZED,
                        "invalid_grant",
                        "invalid username or password",
                    );
                }
            }
        }
        "refresh_token" => {
            inner.counters.refresh_grants.fetch_add(1, Ordering::SeqCst);
            let held = inner.refresh_tokens.lock().remove(field("refresh_token"));
            match held {
                Some(found) => found,
                None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "unknown refresh token"),
            }
        }
        other => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", other),
    };
    // A refresh keeps the login's scopes, as Dex does.
    let scopes: Vec<&str> = scope.split(' ').collect();
    let mut audience: Vec<String> = scopes
        .iter()
        .filter_map(|s| s.strip_prefix("audience:server:client_id:"))
        .map(String::from)
        .collect();
    audience.push(client.id.clone());
    let ttl = *inner.id_token_ttl.lock();
    let claims = json!({
        "iss": inner.url, "aud": audience, "azp": client.id, "sub": subject,
        "exp": now() + ttl.as_secs() as i64, "iat": now(),
        "groups": if scopes.contains(&"groups") { json!(groups) } else { json!([]) },
    });
    let id_token = inner.key.lock().sign(&claims);
    let refresh = format!("r-{:016x}", rand::random::<u64>());
    inner
        .refresh_tokens
        .lock()
        .insert(refresh.clone(), (subject, groups, scope.clone()));
    json_response(
        StatusCode::OK,
        json!({
            "access_token": id_token, "id_token": id_token, "token_type": "bearer",
            "expires_in": ttl.as_secs(), "refresh_token": refresh,
        }),
    )
}
