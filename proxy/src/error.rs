//! The one error type every interface call returns, whatever the backend.
//!
//! It maps one-to-one onto gRPC status codes (see [`crate::status`]), so an error raised
//! by a backend reaches a remote client as the same variant through [`crate::client`].

use prism_proto::common::v1::ErrorReason;

/// An error and its causes, `outer: inner: ...` (tonic's and reqwest's transport errors
/// say little without their sources: which certificate check failed, that a connection
/// was refused).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// The result of every interface call.
pub type BackendResult<T> = Result<T, BackendError>;

/// Why an interface call failed; one variant per gRPC status the proxy answers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackendError {
    /// The request is malformed or over a limit. `field` names the request field.
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// The request field at fault.
        field: String,
        /// What is wrong and what was expected.
        message: String,
        /// The limit exceeded, as `name=value` (e.g. `max_value_bytes=1048576`).
        limit: Option<String>,
    },
    /// Something the call refers to does not exist (not used for missing keys).
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend cannot be reached or failed in a way a retry may fix.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The request's deadline passed; a retry with more time may succeed.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// Too much work in flight; retry after a short delay.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The namespace or backend does not serve this interface.
    #[error("not served: {0}")]
    Unimplemented(String),
    /// No valid credentials.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Valid credentials that may not use this namespace.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A bug or an answer the driver did not expect; not retryable.
    #[error("internal error: {0}")]
    Internal(String),
}

impl BackendError {
    /// An INVALID_ARGUMENT for `field`, with no limit named.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        BackendError::InvalidArgument {
            field: field.into(),
            message: message.into(),
            limit: None,
        }
    }

    /// Whether sending the same request again can succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            BackendError::Unavailable(_) | BackendError::DeadlineExceeded(_) | BackendError::Overloaded(_)
        )
    }

    /// The `prism.common.v1.ErrorReason` sent in the error details.
    pub fn reason(&self) -> ErrorReason {
        match self {
            BackendError::InvalidArgument { .. } => ErrorReason::InvalidArgument,
            BackendError::NotFound(_) => ErrorReason::NotFound,
            BackendError::Unavailable(_) => ErrorReason::BackendUnavailable,
            BackendError::DeadlineExceeded(_) => ErrorReason::DeadlineExceeded,
            BackendError::Overloaded(_) => ErrorReason::Overloaded,
            BackendError::Unimplemented(_) => ErrorReason::InterfaceNotServed,
            BackendError::Unauthenticated(_) => ErrorReason::Unauthenticated,
            BackendError::PermissionDenied(_) => ErrorReason::PermissionDenied,
            BackendError::Internal(_) => ErrorReason::Internal,
        }
    }
}
