//! OIDC bearer tokens: issuer discovery, the JWKS cached and fetched again when a token
//! names a key id it does not hold (keys rotate), and issuer, audience, expiry and
//! signature checked with a small clock leeway. Tokens signed with `alg: none` or with an
//! algorithm other than the key's are refused.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::{Mutex, OnceCell};
use tokio::time::Instant;

use super::{Caller, OidcConfig};
use crate::BackendError;

/// Fetching the keys again for an unknown key id happens at most this often, so junk
/// tokens cannot make the proxy hammer the issuer.
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(5);

/// Checks bearer tokens against one issuer (discovery, cached JWKS, claims).
pub struct OidcValidator {
    config: OidcConfig,
    http: reqwest::Client,
    discovery: OnceCell<Discovery>,
    keys: Mutex<Keys>,
}

struct Keys {
    set: JwkSet,
    fetched: Option<Instant>,
}

/// The parts of an issuer's discovery document the proxy and its tools use.
#[derive(Debug, Clone, Deserialize)]
pub struct Discovery {
    /// The issuer URL, as the issuer names itself.
    pub issuer: String,
    /// Where the signing keys are.
    pub jwks_uri: String,
    /// Where logins and refreshes go (clients such as `devstack token`; not the proxy).
    #[serde(default)]
    pub token_endpoint: Option<String>,
}

/// Reaching the issuer failed, or it names itself differently.
#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    /// A document could not be fetched or read.
    #[error("OIDC issuer: {url}: {message}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// Why it failed.
        message: String,
    },
    /// The discovery document names another issuer than the configured one.
    #[error(
        "OIDC discovery at {url} names issuer {found:?}, but {expected:?} is configured; they must match byte for byte"
    )]
    Mismatch {
        /// The discovery document's URL.
        url: String,
        /// The issuer it names.
        found: String,
        /// The issuer configured.
        expected: String,
    },
}

impl From<IssuerError> for BackendError {
    fn from(e: IssuerError) -> BackendError {
        BackendError::Unavailable(e.to_string())
    }
}

impl OidcValidator {
    /// A validator for `config`; nothing is fetched until the first token arrives.
    pub fn new(config: OidcConfig) -> Result<OidcValidator, BackendError> {
        crate::tls::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| BackendError::Internal(format!("HTTP client for OIDC: {e}")))?;
        Ok(OidcValidator {
            config,
            http,
            discovery: OnceCell::new(),
            keys: Mutex::new(Keys {
                set: JwkSet { keys: Vec::new() },
                fetched: None,
            }),
        })
    }

    /// The issuer's discovery document, fetched once; its `issuer` must be the
    /// configured one exactly.
    pub async fn discovery(&self) -> Result<&Discovery, IssuerError> {
        self.discovery
            .get_or_try_init(|| async {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer.trim_end_matches('/')
                );
                let discovery: Discovery = self.get_json(&url).await?;
                if discovery.issuer != self.config.issuer {
                    return Err(IssuerError::Mismatch {
                        url,
                        found: discovery.issuer,
                        expected: self.config.issuer.clone(),
                    });
                }
                Ok(discovery)
            })
            .await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, IssuerError> {
        let fetch = |e: reqwest::Error| IssuerError::Fetch {
            url: url.to_string(),
            message: e.to_string(),
        };
        self.http
            .get(url)
            .send()
            .await
            .map_err(fetch)?
            .error_for_status()
            .map_err(fetch)?
            .json()
            .await
            .map_err(fetch)
    }

    /// The key for `kid`, fetching the JWKS when it is not held (first use, rotation).
    async fn key(&self, kid: &str) -> Result<jsonwebtoken::jwk::Jwk, BackendError> {
        let mut keys = self.keys.lock().await;
        if let Some(jwk) = keys.set.find(kid) {
            return Ok(jwk.clone());
        }
        let may_fetch = keys.fetched.is_none_or(|t| t.elapsed() >= REFRESH_AT_MOST_EVERY);
        if may_fetch {
            let uri = self.discovery().await?.jwks_uri.clone();
            keys.set = self.get_json(&uri).await?;
            keys.fetched = Some(Instant::now());
            if let Some(jwk) = keys.set.find(kid) {
                return Ok(jwk.clone());
            }
        }
        Err(BackendError::Unauthenticated(format!(
            "the token's key id {kid:?} is not among the issuer's keys"
        )))
    }

    /// Checks `token` and returns who it names.
    pub async fn validate(&self, token: &str) -> Result<Caller, BackendError> {
        let invalid = |what: String| BackendError::Unauthenticated(format!("invalid token: {what}"));
        // `alg: none` and unknown algorithms fail here: jsonwebtoken has no such algorithm.
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(e.to_string()))?;
        let kid = header
            .kid
            .ok_or_else(|| invalid("no key id (kid) in its header".into()))?;
        let jwk = self.key(&kid).await?;
        // KeyAlgorithm and Algorithm name their variants alike (RS256, ES256, ...).
        if let Some(key_alg) = jwk.common.key_algorithm
            && format!("{key_alg:?}") != format!("{:?}", header.alg)
        {
            return Err(invalid(format!(
                "signed with {:?}, but key {kid} is for {key_alg:?}",
                header.alg
            )));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| invalid(format!("key {kid}: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = self.config.leeway.as_secs();
        let data =
            jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).map_err(|e| invalid(e.to_string()))?;
        let claims = data.claims;
        let groups = claims
            .get(&self.config.groups_claim)
            .and_then(|g| g.as_array())
            .map(|a| a.iter().filter_map(|g| g.as_str().map(String::from)).collect())
            .unwrap_or_default();
        Ok(Caller {
            subject: claims.get("sub").and_then(|s| s.as_str()).map(String::from),
            groups,
        })
    }
}
