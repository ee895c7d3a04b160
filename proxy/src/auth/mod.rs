//! Who may call: `auth: none` (local use) or `auth: { oidc: ... }`, bearer tokens
//! validated against the issuer's keys, and the token's groups matched against each
//! namespace's `groups`.

#[cfg(feature = "oidc")]
mod oidc;

use std::time::Duration;

use http::HeaderMap;
#[cfg(feature = "oidc")]
pub use oidc::{Discovery, IssuerError, OidcValidator};
use serde::Deserialize;

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

/// What is wrong with an issuer URL, if anything: it must be https, or plain http on a
/// loopback host (a local Dex), since tokens and keys would otherwise cross the network
/// in clear.
pub(crate) fn issuer_problem(issuer: &str) -> Option<String> {
    let Some(rest) = issuer.strip_prefix("http://") else {
        return (!issuer.starts_with("https://")).then(|| format!("{issuer:?} is not an http(s) URL"));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    (!loopback).then(|| format!("{issuer:?}: plain http is allowed only on a loopback host; use https"))
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
    /// Who calls: the request's bearer token checked (UNAUTHENTICATED when it is missing
    /// or invalid), before anything about the configuration is looked up. `auth: none`
    /// lets anyone in.
    #[cfg_attr(not(feature = "oidc"), allow(unused_variables))]
    pub(crate) async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, BackendError> {
        match self {
            Auth::None => Ok(Caller::default()),
            #[cfg(feature = "oidc")]
            // Boxed: the validation's future (a key fetch inside) is kilobytes, and every
            // request's admission would carry its size, also with `auth: none`.
            Auth::Oidc(validator) => Box::pin(validator.validate(bearer(headers)?)).await,
        }
    }

    /// [`Auth::authenticate`] when it needs no waiting (`auth: none`); `None` otherwise.
    pub(crate) fn authenticate_now(&self) -> Option<Result<Caller, BackendError>> {
        match self {
            Auth::None => Some(Ok(Caller::default())),
            #[cfg(feature = "oidc")]
            Auth::Oidc(_) => None,
        }
    }

    /// Whether `caller` may use a namespace open to `groups` (`None`: to every caller).
    #[cfg_attr(not(feature = "oidc"), allow(unused_variables))]
    pub(crate) fn may_use(&self, caller: &Caller, groups: Option<&[String]>) -> bool {
        match self {
            Auth::None => true,
            #[cfg(feature = "oidc")]
            Auth::Oidc(_) => groups.is_none_or(|allowed| caller.groups.iter().any(|g| allowed.contains(g))),
        }
    }

    /// PERMISSION_DENIED unless `caller` may use `namespace`, open to `groups`.
    pub(crate) fn permit(
        &self,
        caller: &Caller,
        namespace: &str,
        groups: Option<&[String]>,
    ) -> Result<(), BackendError> {
        if self.may_use(caller, groups) {
            return Ok(());
        }
        Err(BackendError::PermissionDenied(format!(
            "namespace {namespace} is open to groups [{}]; the token has [{}]",
            groups.unwrap_or_default().join(", "),
            caller.groups.join(", ")
        )))
    }
}

/// The token of `authorization: Bearer <token>`.
#[cfg_attr(not(feature = "oidc"), allow(dead_code))]
fn bearer(headers: &HeaderMap) -> Result<&str, BackendError> {
    let value = headers
        .get(http::header::AUTHORIZATION)
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
    fn plain_http_issuers_only_on_loopback() {
        for ok in [
            "https://dex.example/dex",
            "http://127.0.0.1:5556/dex",
            "http://localhost:5556",
            "http://[::1]:5556/x",
        ] {
            assert_eq!(issuer_problem(ok), None, "{ok}");
        }
        for bad in ["http://dex.example/dex", "http://10.0.0.5:5556", "dex.local", "ftp://x"] {
            assert!(issuer_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        let mut m = HeaderMap::new();
        assert!(matches!(bearer(&m), Err(BackendError::Unauthenticated(_))));
        m.insert("authorization", "Basic abc".parse().unwrap());
        assert!(matches!(bearer(&m), Err(BackendError::Unauthenticated(_))));
        m.insert("authorization", "Bearer ".parse().unwrap());
        assert!(matches!(bearer(&m), Err(BackendError::Unauthenticated(_))));
        m.insert("authorization", "bearer abc.def.ghi".parse().unwrap());
        assert_eq!(bearer(&m).unwrap(), "abc.def.ghi");
    }
}
