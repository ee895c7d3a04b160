//! Who may call: `auth: none` (local use) or `auth: { oidc: ... }`, bearer tokens
//! validated against the issuer's keys, and the token's groups matched against each
//! namespace's `groups`.

#[cfg(feature = "oidc")]
mod oidc;

use std::time::Duration;

#[cfg(feature = "oidc")]
pub use oidc::{Discovery, IssuerError, OidcValidator};
use serde::Deserialize;
use tonic::metadata::MetadataMap;

use crate::BackendError;

/// `auth: { oidc: { issuer: https://dex.local:5556/dex, audience: prism-proxy } }`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The issuer URL, exactly as it appears in the tokens' `iss`.
    pub issuer: String,
    /// The `aud` tokens must carry (the proxy's client id at the issuer).
    pub audience: String,
    /// The claim holding the caller's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Clock difference tolerated on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
}

pub(crate) fn default_groups_claim() -> String {
    "groups".into()
}

pub(crate) fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

/// The proxy's authentication, built from the config.
pub(crate) enum Auth {
    None,
    #[cfg(feature = "oidc")]
    Oidc(Box<OidcValidator>),
}

/// The caller, once authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`.
    pub subject: Option<String>,
    /// The token's groups (the configured groups claim).
    pub groups: Vec<String>,
}

impl Auth {
    /// Authenticates the request's bearer token (UNAUTHENTICATED when it is missing or
    /// invalid) and checks it may use a namespace open to `groups` (PERMISSION_DENIED);
    /// `None` means any authenticated caller.
    #[cfg_attr(not(feature = "oidc"), allow(unused_variables))]
    pub(crate) async fn authorize(
        &self,
        metadata: &MetadataMap,
        namespace: &str,
        groups: Option<&[String]>,
    ) -> Result<Caller, BackendError> {
        match self {
            Auth::None => Ok(Caller::default()),
            #[cfg(feature = "oidc")]
            Auth::Oidc(validator) => {
                let caller = validator.validate(bearer(metadata)?).await?;
                allowed(caller, namespace, groups)
            }
        }
    }
}

/// The caller if one of its groups may use the namespace (or any may), PERMISSION_DENIED
/// otherwise.
#[cfg_attr(not(feature = "oidc"), allow(dead_code))]
fn allowed(caller: Caller, namespace: &str, groups: Option<&[String]>) -> Result<Caller, BackendError> {
    if let Some(allowed) = groups
        && !caller.groups.iter().any(|g| allowed.contains(g))
    {
        return Err(BackendError::PermissionDenied(format!(
            "namespace {namespace} is open to groups [{}]; the token has [{}]",
            allowed.join(", "),
            caller.groups.join(", ")
        )));
    }
    Ok(caller)
}

/// The token of `authorization: Bearer <token>`.
#[cfg_attr(not(feature = "oidc"), allow(dead_code))]
fn bearer(metadata: &MetadataMap) -> Result<&str, BackendError> {
    let value = metadata
        .get("authorization")
        .ok_or_else(|| BackendError::Unauthenticated("no authorization metadata (expected `Bearer <token>`)".into()))?;
    let value = value
        .to_str()
        .map_err(|_| BackendError::Unauthenticated("the authorization metadata is not ASCII".into()))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => Ok(token.trim()),
        _ => Err(BackendError::Unauthenticated(
            "the authorization metadata is not `Bearer <token>`".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_strictly() {
        let mut m = MetadataMap::new();
        assert!(matches!(bearer(&m), Err(BackendError::Unauthenticated(_))));
        m.insert("authorization", "Basic abc".parse().unwrap());
        assert!(matches!(bearer(&m), Err(BackendError::Unauthenticated(_))));
        m.insert("authorization", "Bearer ".parse().unwrap());
        assert!(matches!(bearer(&m), Err(BackendError::Unauthenticated(_))));
        m.insert("authorization", "bearer abc.def.ghi".parse().unwrap());
        assert_eq!(bearer(&m).unwrap(), "abc.def.ghi");
    }
}
