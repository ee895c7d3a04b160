//! OIDC bearer tokens: issuer discovery, the JWKS cached and fetched again when a token
//! names a key id it does not hold (keys rotate), and issuer, audience, expiry, not-before,
//! issued-at and signature checked with a small clock leeway. Tokens signed with
//! `alg: none` or with an algorithm the key's type does not use are refused.
//!
//! A token whose key is held never waits on the issuer: the key set is read without
//! waiting, and only tokens naming an unknown key id queue for the one fetch in flight
//! (single flight). Fetches happen at most every 5 s, failed ones included, so junk key
//! ids cannot make the proxy hammer an issuer that is down.

use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::RwLock;
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
    /// The keys last fetched; read without waiting.
    keys: RwLock<JwkSet>,
    /// Held by the one fetch in flight; holds when the last attempt started.
    fetching: Mutex<Option<Instant>>,
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
    /// Where a device-code login starts (RFC 8628), if the issuer offers one.
    #[serde(default)]
    pub device_authorization_endpoint: Option<String>,
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
        if let Some(problem) = super::issuer_problem(&config.issuer) {
            return Err(BackendError::invalid("auth.oidc.issuer", problem));
        }
        crate::tls::ensure_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| BackendError::Internal(format!("HTTP client for OIDC: {e}")))?;
        Ok(OidcValidator {
            config,
            http,
            discovery: OnceCell::new(),
            keys: RwLock::new(JwkSet { keys: Vec::new() }),
            fetching: Mutex::new(None),
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
            message: crate::error::chain(&e),
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

    fn held(&self, kid: &str) -> Option<Jwk> {
        self.keys.read().find(kid).cloned()
    }

    /// The key for `kid`, fetching the JWKS when it is not held (first use, rotation).
    async fn key(&self, kid: &str) -> Result<Jwk, BackendError> {
        if let Some(jwk) = self.held(kid) {
            return Ok(jwk);
        }
        let unknown =
            || BackendError::Unauthenticated(format!("the token's key id {kid:?} is not among the issuer's keys"));
        // One fetch at a time; whoever waited finds its answer in the keys it brought.
        let mut last_attempt = self.fetching.lock().await;
        if let Some(jwk) = self.held(kid) {
            return Ok(jwk);
        }
        if last_attempt.is_some_and(|t| t.elapsed() < REFRESH_AT_MOST_EVERY) {
            return Err(unknown());
        }
        *last_attempt = Some(Instant::now());
        let fetched: Result<JwkSet, IssuerError> = async {
            let uri = self.discovery().await?.jwks_uri.clone();
            self.get_json(&uri).await
        }
        .await;
        match fetched {
            Ok(set) => {
                *self.keys.write() = set;
                self.held(kid).ok_or_else(unknown)
            }
            // With keys in hand the token is the suspect: its key id is not one of them.
            // With none, no token can be checked until the issuer answers.
            Err(e) if self.keys.read().keys.is_empty() => Err(e.into()),
            Err(e) => Err(BackendError::Unauthenticated(format!(
                "the token's key id {kid:?} is not among the issuer's keys, which could not be fetched again: {e}"
            ))),
        }
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
        if !algorithms_of(&jwk).contains(&header.alg) {
            return Err(invalid(format!(
                "signed with {:?}, which key {kid} (of its type) does not sign with",
                header.alg
            )));
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| invalid(format!("key {kid}: {e}")))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = self.config.leeway.as_secs();
        let data =
            jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation).map_err(|e| invalid(e.to_string()))?;
        let claims = data.claims;
        // jsonwebtoken does not look at `iat`: a token issued in the future is refused too.
        if let Some(iat) = claims.get("iat").and_then(serde_json::Value::as_f64) {
            let now = jsonwebtoken::get_current_timestamp() as f64;
            if iat > now + self.config.leeway.as_secs_f64() {
                return Err(invalid("issued in the future (iat)".into()));
            }
        }
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

/// The signing algorithms a key of this type is used with.
fn algorithms_of(jwk: &Jwk) -> &'static [Algorithm] {
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => &[],
        },
        AlgorithmParameters::OctetKeyPair(_) => &[Algorithm::EdDSA],
        // A shared secret is no public key, and key types added later are not trusted
        // until named here: nothing verifies with them.
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(json: serde_json::Value) -> Jwk {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_key_verifies_only_the_algorithms_of_its_type() {
        let rsa = jwk(serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "r"}));
        assert!(algorithms_of(&rsa).contains(&Algorithm::RS256));
        assert!(!algorithms_of(&rsa).contains(&Algorithm::ES256));
        assert!(
            !algorithms_of(&rsa).contains(&Algorithm::HS256),
            "no HMAC with a public RSA key"
        );
        let p256 = jwk(serde_json::json!({"kty": "EC", "crv": "P-256", "x": "AQAB", "y": "AQAB", "kid": "e"}));
        assert_eq!(algorithms_of(&p256), &[Algorithm::ES256]);
        let secret = jwk(serde_json::json!({"kty": "oct", "k": "c2VjcmV0", "kid": "s"}));
        assert!(algorithms_of(&secret).is_empty(), "a shared secret verifies nothing");
    }
}
