//! Who may call: `auth: none` (local use) or `auth: { oidc: ... }`, bearer tokens
//! validated against the issuer's keys, and the token's groups matched against each
//! namespace's `groups`.

pub(crate) mod oidc;

pub use oidc::{Discovery, IssuerError, OidcConfig, OidcValidator};

use tonic::metadata::MetadataMap;

use crate::BackendError;

/// The proxy's authentication, built from the config.
pub enum Auth {
    None,
    Oidc(Box<OidcValidator>),
}

/// The caller, once authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Caller {
    pub subject: Option<String>,
    pub groups: Vec<String>,
}

impl Auth {
    /// Authenticates the request's bearer token (UNAUTHENTICATED when it is missing or
    /// invalid) and checks it may use a namespace open to `groups` (PERMISSION_DENIED);
    /// `None` means any authenticated caller.
    pub async fn authorize(
        &self,
        metadata: &MetadataMap,
        namespace: &str,
        groups: Option<&[String]>,
    ) -> Result<Caller, BackendError> {
        let validator = match self {
            Auth::None => return Ok(Caller::default()),
            Auth::Oidc(v) => v,
        };
        let token = bearer(metadata)?;
        let caller = validator.validate(token).await?;
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
}

/// The token of `authorization: Bearer <token>`.
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
