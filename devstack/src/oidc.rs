//! The developer's login: discovery (the issuer must match byte for byte), the password
//! grant with the public CLI client, the refresh grant, and every token verified against
//! the issuer's JWKS exactly as the proxy will (`prism_proxy::auth::OidcValidator`)
//! before it is cached (0600) or printed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use prism_proxy::auth::{Caller, Discovery, IssuerError, OidcConfig, OidcValidator};
use serde::{Deserialize, Serialize};

use crate::identity::Identity;
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

/// Scopes asked for: the proxy's audience (Dex's cross-client trust), groups, and a
/// refresh token.
pub fn scopes() -> String {
    format!("openid email profile groups offline_access audience:server:client_id:{PROXY_CLIENT_ID}")
}

/// Renew a cached token this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Talks to one issuer as the CLI client.
pub struct OidcClient {
    issuer: String,
    http: reqwest::Client,
    validator: OidcValidator,
}

impl OidcClient {
    pub fn new(issuer: &str) -> Result<OidcClient, OidcError> {
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
            audience: PROXY_CLIENT_ID.to_string(),
            groups_claim: "groups".into(),
            leeway: Duration::from_secs(30),
        })
        .map_err(|e| http_error(e.to_string()))?;
        Ok(OidcClient {
            issuer: issuer.to_string(),
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

    /// A grant at the token endpoint; the token comes back verified, with whom it names.
    async fn grant(&self, form: &[(&str, &str)]) -> Result<(CachedToken, Caller), OidcError> {
        let url = self
            .discover()
            .await?
            .token_endpoint
            .clone()
            .ok_or_else(|| OidcError::Http {
                url: self.issuer.clone(),
                message: "the discovery document names no token_endpoint".into(),
            })?;
        let http = |e: reqwest::Error| OidcError::Http {
            url: url.clone(),
            message: e.to_string(),
        };
        let response = self.http.post(&url).form(form).send().await.map_err(http)?;
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
                url,
                error,
                description,
            });
        }
        let token: TokenResponse = response.json().await.map_err(http)?;
        let caller = self.verify(&token.id_token).await?;
        let cached = CachedToken {
            issuer: self.issuer.clone(),
            expires_at: now() + token.expires_in.unwrap_or(0),
            id_token: token.id_token,
            refresh_token: token.refresh_token,
        };
        Ok((cached, caller))
    }

    /// Logs in with the password grant as `identity`.
    pub async fn password_login(&self, identity: &Identity) -> Result<(CachedToken, Caller), OidcError> {
        let scope = scopes();
        self.grant(&[
            ("grant_type", "password"),
            ("client_id", CLI_CLIENT_ID),
            ("username", &identity.email),
            ("password", &identity.password),
            ("scope", &scope),
        ])
        .await
    }

    /// A new token for a refresh token.
    pub async fn refresh(&self, refresh_token: &str) -> Result<(CachedToken, Caller), OidcError> {
        self.grant(&[
            ("grant_type", "refresh_token"),
            ("client_id", CLI_CLIENT_ID),
            ("refresh_token", refresh_token),
        ])
        .await
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

/// Where the token is cached.
pub fn token_path(state_dir: &Path) -> PathBuf {
    state_dir.join("token.json")
}

/// How `token` got the token it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Refreshed,
    LoggedIn,
}

/// A valid token for the developer: the cached one while it is valid, else refreshed,
/// else a fresh password login; the result is verified and cached (0600).
pub async fn token(settings: &Settings, identity: &Identity) -> Result<(CachedToken, Source), OidcError> {
    let client = OidcClient::new(&settings.issuer())?;
    let path = token_path(&settings.state_dir);
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
    let (token, source) = match refreshed {
        Some(t) => (t, Source::Refreshed),
        None => (client.password_login(identity).await?.0, Source::LoggedIn),
    };
    state::ensure_private_dir(&settings.state_dir)?;
    state::write_private_json(&path, &token)?;
    Ok((token, source))
}

/// A fresh password login, verified and cached: the last step of `up`.
pub async fn login(settings: &Settings, identity: &Identity) -> Result<(CachedToken, Caller), OidcError> {
    let client = OidcClient::new(&settings.issuer())?;
    let (token, caller) = client.password_login(identity).await?;
    state::ensure_private_dir(&settings.state_dir)?;
    state::write_private_json(&token_path(&settings.state_dir), &token)?;
    Ok((token, caller))
}
