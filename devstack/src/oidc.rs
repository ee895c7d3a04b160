//! The developer's login: discovery (the issuer must match byte for byte), the password
//! grant and the device-code flow (RFC 8628) with the public CLI client, the refresh
//! grant, and every token verified against the issuer's JWKS exactly as the proxy will
//! (`prism_proxy::auth::OidcValidator`) before it is cached (0600) or printed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prism_proxy::auth::{Caller, Discovery, IssuerError, OidcConfig, OidcValidator};
use serde::{Deserialize, Serialize};

use crate::identity::{Identity, User, Who};
use crate::settings::{CLI_CLIENT_ID, PROXY_CLIENT_ID, Settings};
use crate::state::{self, StateError};

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("OIDC issuer {url}: {message}")]
    Http { url: String, message: String },
    #[error(
        "the issuer's discovery document at {url} names issuer {found:?}, but the devstack uses {expected:?}; they must match byte for byte"
    )]
    IssuerMismatch {
        url: String,
        found: String,
        expected: String,
    },
    #[error("login refused by {url}: {error}{description}")]
    Refused {
        url: String,
        error: String,
        description: String,
    },
    #[error("the issuer returned a token the proxy would refuse: {0}")]
    Unverified(String),
    #[error("{url}: the sign-in was refused in the browser (access_denied); run the command again to get a new code")]
    DeviceDenied { url: String },
    #[error("{url}: nobody signed in with code {user_code} within {waited:?}; run the command again to get a new code")]
    DeviceExpired {
        url: String,
        user_code: String,
        waited: Duration,
    },
    #[error(transparent)]
    State(#[from] StateError),
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    id_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The token `devstack token` prints and what it needs to renew it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedToken {
    pub issuer: String,
    pub id_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds.
    pub expires_at: u64,
}

/// What the issuer answers to a device authorization request (RFC 8628 section 3.2).
#[derive(Debug, Clone, Deserialize)]
pub struct DeviceCode {
    pub device_code: String,
    /// What the person types at `verification_uri`.
    pub user_code: String,
    pub verification_uri: String,
    /// The same page with the code filled in, if the issuer offers one.
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// Seconds the code stays valid.
    pub expires_in: u64,
    /// Seconds between polls; RFC 8628 says 5 when absent.
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    5
}

/// Bounds on what an issuer may ask of the poller: at least a second between polls, at
/// most a minute, and a code that lasts at most an hour.
const POLL_BOUNDS: (u64, u64) = (1, 60);
const DEVICE_CODE_LIFETIME_MAX: u64 = 3600;

/// The client a login goes through and the audience its tokens must carry.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub client_id: String,
    /// The `aud` the proxy checks.
    pub audience: String,
    pub scope: String,
}

impl ClientSettings {
    /// The devstack's Dex: the public CLI client asking for tokens whose audience is the
    /// proxy (Dex's cross-client trust), with groups and a refresh token.
    pub fn devstack() -> ClientSettings {
        ClientSettings {
            client_id: CLI_CLIENT_ID.into(),
            audience: PROXY_CLIENT_ID.into(),
            scope: format!("openid email profile groups offline_access audience:server:client_id:{PROXY_CLIENT_ID}"),
        }
    }
}

/// Renew a cached token this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Talks to one issuer as one client.
pub struct OidcClient {
    issuer: String,
    client: ClientSettings,
    http: reqwest::Client,
    validator: OidcValidator,
}

impl OidcClient {
    /// The devstack's client of `issuer`.
    pub fn new(issuer: &str) -> Result<OidcClient, OidcError> {
        OidcClient::with_client(issuer, ClientSettings::devstack())
    }

    pub fn with_client(issuer: &str, client: ClientSettings) -> Result<OidcClient, OidcError> {
        let http_error = |e: String| OidcError::Http {
            url: issuer.to_string(),
            message: e,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| http_error(e.to_string()))?;
        let validator = OidcValidator::new(OidcConfig {
            issuer: issuer.to_string(),
            audience: client.audience.clone(),
            groups_claim: "groups".into(),
            leeway: Duration::from_secs(30),
        })
        .map_err(|e| http_error(e.to_string()))?;
        Ok(OidcClient {
            issuer: issuer.to_string(),
            client,
            http,
            validator,
        })
    }

    /// The discovery document (fetched once, shared with the token check); its `issuer`
    /// must be ours exactly.
    pub async fn discover(&self) -> Result<&Discovery, OidcError> {
        self.validator.discovery().await.map_err(|e| match e {
            IssuerError::Fetch { url, message } => OidcError::Http { url, message },
            IssuerError::Mismatch { url, found, expected } => OidcError::IssuerMismatch { url, found, expected },
        })
    }

    /// An endpoint the discovery document must name.
    async fn endpoint(&self, pick: fn(&Discovery) -> &Option<String>, name: &str) -> Result<String, OidcError> {
        pick(self.discover().await?).clone().ok_or_else(|| OidcError::Http {
            url: self.issuer.clone(),
            message: format!("the discovery document names no {name}"),
        })
    }

    /// Posts `form` to `url`; a refusal is read as an OAuth error response.
    async fn post<T: serde::de::DeserializeOwned>(&self, url: &str, form: &[(&str, &str)]) -> Result<T, OidcError> {
        let http = |e: reqwest::Error| OidcError::Http {
            url: url.to_string(),
            message: e.to_string(),
        };
        let response = self.http.post(url).form(form).send().await.map_err(http)?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            let (error, description) = match serde_json::from_str::<ErrorResponse>(&body) {
                Ok(e) => (
                    e.error,
                    e.error_description.map(|d| format!(" ({d})")).unwrap_or_default(),
                ),
                Err(_) => (format!("HTTP {status}"), format!(": {}", body.trim())),
            };
            return Err(OidcError::Refused {
                url: url.to_string(),
                error,
                description,
            });
        }
        response.json().await.map_err(http)
    }

    /// A grant at the token endpoint; the token comes back verified, with whom it names.
    async fn grant(&self, form: &[(&str, &str)]) -> Result<(CachedToken, Caller), OidcError> {
        let url = self.endpoint(|d| &d.token_endpoint, "token_endpoint").await?;
        let token: TokenResponse = self.post(&url, form).await?;
        let caller = self.verify(&token.id_token).await?;
        let cached = CachedToken {
            issuer: self.issuer.clone(),
            expires_at: now() + token.expires_in.unwrap_or(0),
            id_token: token.id_token,
            refresh_token: token.refresh_token,
        };
        Ok((cached, caller))
    }

    /// Logs in with the password grant as `user`.
    pub async fn password_login(&self, user: &User) -> Result<(CachedToken, Caller), OidcError> {
        self.grant(&[
            ("grant_type", "password"),
            ("client_id", &self.client.client_id),
            ("username", &user.email),
            ("password", &user.password),
            ("scope", &self.client.scope),
        ])
        .await
    }

    /// A new token for a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<(CachedToken, Caller), OidcError> {
        self.grant(&[
            ("grant_type", "refresh_token"),
            ("client_id", &self.client.client_id),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// Starts a device-code login: the code and the page where a person enters it.
    pub async fn device_start(&self) -> Result<DeviceCode, OidcError> {
        let url = self
            .endpoint(|d| &d.device_authorization_endpoint, "device_authorization_endpoint")
            .await?;
        let code: DeviceCode = self
            .post(
                &url,
                &[("client_id", &self.client.client_id), ("scope", &self.client.scope)],
            )
            .await?;
        let bad = |message: String| OidcError::Http {
            url: url.clone(),
            message,
        };
        match reqwest::Url::parse(&code.verification_uri) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(bad(format!(
                    "verification_uri {:?} is not an http(s) URL",
                    code.verification_uri
                )));
            }
        }
        if code.device_code.is_empty() || code.user_code.is_empty() {
            return Err(bad("the device authorization names no device_code or user_code".into()));
        }
        Ok(DeviceCode {
            interval: code.interval.clamp(POLL_BOUNDS.0, POLL_BOUNDS.1),
            expires_in: code.expires_in.min(DEVICE_CODE_LIFETIME_MAX),
            ..code
        })
    }

    /// Polls the token endpoint until the person signs in (the verified token), refuses,
    /// or the code expires; `slow_down` adds five seconds to the interval, as RFC 8628 asks.
    pub async fn device_wait(&self, code: &DeviceCode) -> Result<(CachedToken, Caller), OidcError> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(code.expires_in);
        let mut interval = Duration::from_secs(code.interval);
        loop {
            tokio::time::sleep(interval).await;
            let polled = self
                .grant(&[
                    ("grant_type", crate::stack::dex::DEVICE_CODE_GRANT),
                    ("client_id", &self.client.client_id),
                    ("device_code", &code.device_code),
                ])
                .await;
            match polled {
                Err(OidcError::Refused {
                    error,
                    url,
                    description,
                }) => match error.as_str() {
                    "authorization_pending" => {}
                    "slow_down" => {
                        interval = (interval + Duration::from_secs(5)).min(Duration::from_secs(POLL_BOUNDS.1))
                    }
                    "access_denied" => return Err(OidcError::DeviceDenied { url }),
                    "expired_token" => return Err(expired(url, code, started)),
                    _ => {
                        return Err(OidcError::Refused {
                            error,
                            url,
                            description,
                        });
                    }
                },
                other => return other,
            }
            if Instant::now() + interval > deadline {
                let url = self.endpoint(|d| &d.token_endpoint, "token_endpoint").await?;
                return Err(expired(url, code, started));
            }
        }
    }

    /// Checks `token` as the proxy does (signature against the JWKS, issuer, audience,
    /// expiry); returns whom it names.
    pub async fn verify(&self, token: &str) -> Result<Caller, OidcError> {
        self.validator
            .validate(token)
            .await
            .map_err(|e| OidcError::Unverified(e.to_string()))
    }
}

fn expired(url: String, code: &DeviceCode, started: Instant) -> OidcError {
    OidcError::DeviceExpired {
        url,
        user_code: code.user_code.clone(),
        waited: Duration::from_secs(started.elapsed().as_secs()),
    }
}

/// How a token is had; each has its own cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// The password grant as one of the kept users.
    Password(Who),
    /// The device-code flow, as whoever signs in in the browser.
    Device,
}

/// Where the token of `login` is cached.
pub fn token_path(state_dir: &Path, login: Login) -> PathBuf {
    state_dir.join(match login {
        Login::Password(Who::Dev) => "token.json",
        Login::Password(Who::Viewer) => "token-viewer.json",
        Login::Device => "token-device.json",
    })
}

/// Every token cache (`down` removes them all).
pub fn token_paths(state_dir: &Path) -> Vec<PathBuf> {
    [Login::Password(Who::Dev), Login::Password(Who::Viewer), Login::Device]
        .map(|login| token_path(state_dir, login))
        .to_vec()
}

/// How `token` got the token it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Refreshed,
    LoggedIn,
}

/// A valid token for `login`: the cached one while it is valid, else refreshed, else a
/// new login (for the device flow `show` is given the code to show the person); the
/// result is verified and cached (0600).
pub async fn token(
    settings: &Settings,
    identity: &Identity,
    login: Login,
    show: impl FnOnce(&DeviceCode),
) -> Result<(CachedToken, Source), OidcError> {
    let client = OidcClient::new(&settings.issuer())?;
    let path = token_path(&settings.state_dir, login);
    let cached: Option<CachedToken> = state::read_json(&path).unwrap_or(None);
    let cached = cached.filter(|c| c.issuer == settings.issuer());
    if let Some(c) = &cached
        && c.expires_at > now() + RENEW_BEFORE.as_secs()
        && client.verify(&c.id_token).await.is_ok()
    {
        return Ok((c.clone(), Source::Cache));
    }
    let refreshed = match cached.and_then(|c| c.refresh_token) {
        Some(refresh) => client.refresh(&refresh).await.ok().map(|(token, _)| token),
        None => None,
    };
    let (token, source) = match (refreshed, login) {
        (Some(t), _) => (t, Source::Refreshed),
        (None, Login::Password(who)) => {
            let user = identity.user(who).ok_or_else(|| OidcError::Http {
                url: settings.issuer(),
                message: format!("no {who:?} user in the kept identity: run `devstack up` to add it"),
            })?;
            (client.password_login(user).await?.0, Source::LoggedIn)
        }
        (None, Login::Device) => {
            let code = client.device_start().await?;
            show(&code);
            (client.device_wait(&code).await?.0, Source::LoggedIn)
        }
    };
    state::ensure_private_dir(&settings.state_dir)?;
    state::write_private_json(&path, &token)?;
    Ok((token, source))
}

/// A fresh password login as `user`, verified and cached: the last step of `up`.
pub async fn login(settings: &Settings, identity: &Identity, who: Who) -> Result<(CachedToken, Caller), OidcError> {
    let client = OidcClient::new(&settings.issuer())?;
    let user = identity.user(who).ok_or_else(|| OidcError::Http {
        url: settings.issuer(),
        message: format!("no {who:?} user in the kept identity"),
    })?;
    let (token, caller) = client.password_login(user).await?;
    state::ensure_private_dir(&settings.state_dir)?;
    state::write_private_json(&token_path(&settings.state_dir, Login::Password(who)), &token)?;
    Ok((token, caller))
}
