//! [`BackendError`] <-> gRPC [`Status`], both ways, so a backend's error reaches a remote
//! client as the same variant.
//!
//! The status carries the standard rich details: `google.rpc.ErrorInfo` (domain
//! [`prism_proto::ERROR_DOMAIN`], reason from `prism.common.v1.ErrorReason`, metadata
//! `retryable`, `field`, `limit`, `namespace`), `RetryInfo` when a retry can help and
//! `BadRequest` naming the field for invalid arguments.

use std::collections::HashMap;
use std::time::Duration;

use prism_proto::common::v1::ErrorReason;
pub use tonic::Code;
use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

use crate::BackendError;

/// Suggested delay before retrying a retryable error.
const RETRY_DELAY: Duration = Duration::from_millis(50);

/// The gRPC status code for `err`.
pub fn code_of(err: &BackendError) -> Code {
    match err {
        BackendError::InvalidArgument { .. } => Code::InvalidArgument,
        BackendError::NotFound(_) => Code::NotFound,
        BackendError::Unavailable(_) => Code::Unavailable,
        BackendError::DeadlineExceeded(_) => Code::DeadlineExceeded,
        BackendError::Overloaded(_) => Code::ResourceExhausted,
        BackendError::Unimplemented(_) => Code::Unimplemented,
        BackendError::Unauthenticated(_) => Code::Unauthenticated,
        BackendError::PermissionDenied(_) => Code::PermissionDenied,
        BackendError::Internal(_) => Code::Internal,
    }
}

/// The status a server sends for `err`; `namespace` is added to the details when known.
pub(crate) fn to_status(err: &BackendError, namespace: Option<&str>) -> Status {
    to_status_with_reason(err, err.reason(), namespace)
}

/// As [`to_status`], with a more specific reason than the variant implies (for example
/// `UNKNOWN_NAMESPACE` for a `NotFound`).
pub(crate) fn to_status_with_reason(err: &BackendError, reason: ErrorReason, namespace: Option<&str>) -> Status {
    let retryable = err.retryable();
    let mut metadata = HashMap::from([("retryable".to_string(), retryable.to_string())]);
    if let Some(namespace) = namespace {
        metadata.insert("namespace".into(), namespace.into());
    }
    let mut details = ErrorDetails::new();
    if let BackendError::InvalidArgument { field, message, limit } = err {
        metadata.insert("field".into(), field.clone());
        if let Some(limit) = limit {
            metadata.insert("limit".into(), limit.clone());
        }
        details.add_bad_request_violation(field.clone(), message.clone());
    }
    if retryable {
        details.set_retry_info(Some(RETRY_DELAY));
    }
    details.set_error_info(reason.as_str_name(), prism_proto::ERROR_DOMAIN, metadata);
    Status::with_error_details(code_of(err), err.to_string(), details)
}

/// The error a client reports for a failed call.
pub fn from_status(status: &Status) -> BackendError {
    let message = status.message().to_string();
    match status.code() {
        Code::InvalidArgument => {
            let details = status.get_error_details();
            let meta = details.error_info().map(|i| &i.metadata);
            let field = meta
                .and_then(|m| m.get("field").cloned())
                .or_else(|| {
                    details
                        .bad_request()
                        .and_then(|b| b.field_violations.first())
                        .map(|v| v.field.clone())
                })
                .unwrap_or_default();
            let limit = meta.and_then(|m| m.get("limit").cloned());
            BackendError::InvalidArgument { field, message, limit }
        }
        Code::NotFound => BackendError::NotFound(message),
        Code::Unavailable => BackendError::Unavailable(message),
        Code::DeadlineExceeded | Code::Cancelled => BackendError::DeadlineExceeded(message),
        Code::ResourceExhausted => BackendError::Overloaded(message),
        Code::Unimplemented => BackendError::Unimplemented(message),
        Code::Unauthenticated => BackendError::Unauthenticated(message),
        Code::PermissionDenied => BackendError::PermissionDenied(message),
        _ => BackendError::Internal(format!("{:?}: {message}", status.code())),
    }
}

/// Whether a status says a retry can help, from its details (or its code when it has
/// none, e.g. a transport error).
pub fn is_retryable(status: &Status) -> bool {
    match status.get_error_details().error_info() {
        Some(info) => info.metadata.get("retryable").is_some_and(|v| v == "true"),
        None => from_status(status).retryable(),
    }
}

/// The canonical upper-case name of a status code (`OK`, `NOT_FOUND`, ...).
pub fn code_name(code: Code) -> &'static str {
    use Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One error of each variant; the match makes a new variant a compile error here.
    fn one_of_each() -> Vec<BackendError> {
        let all = vec![
            BackendError::invalid("f", "m"),
            BackendError::NotFound(String::new()),
            BackendError::Unavailable(String::new()),
            BackendError::DeadlineExceeded(String::new()),
            BackendError::Overloaded(String::new()),
            BackendError::Unimplemented(String::new()),
            BackendError::Unauthenticated(String::new()),
            BackendError::PermissionDenied(String::new()),
            BackendError::Internal(String::new()),
        ];
        for e in &all {
            match e {
                BackendError::InvalidArgument { .. }
                | BackendError::NotFound(_)
                | BackendError::Unavailable(_)
                | BackendError::DeadlineExceeded(_)
                | BackendError::Overloaded(_)
                | BackendError::Unimplemented(_)
                | BackendError::Unauthenticated(_)
                | BackendError::PermissionDenied(_)
                | BackendError::Internal(_) => {}
            }
        }
        all
    }

    /// The proto's reasons and what the code sends are one list: every reason but
    /// UNSPECIFIED is sent by some error (or, for UNKNOWN_NAMESPACE, by the router).
    #[test]
    fn every_error_reason_of_the_proto_is_sent() {
        let mut sent: std::collections::BTreeSet<i32> = one_of_each().iter().map(|e| e.reason() as i32).collect();
        sent.insert(ErrorReason::UnknownNamespace as i32);
        let mut declared = std::collections::BTreeSet::new();
        for value in 1..64 {
            if let Ok(reason) = ErrorReason::try_from(value) {
                declared.insert(reason as i32);
                assert!(
                    sent.contains(&value),
                    "{} is declared but never sent",
                    reason.as_str_name()
                );
            }
        }
        assert_eq!(sent, declared, "a reason sent that the proto does not declare");
    }

    #[test]
    fn round_trip_keeps_variant_field_and_limit() {
        let errors = [
            BackendError::InvalidArgument {
                field: "value".into(),
                message: "too big".into(),
                limit: Some("max_value_bytes=4".into()),
            },
            BackendError::Unavailable("redis down".into()),
            BackendError::Overloaded("busy".into()),
            BackendError::Unimplemented("queue_basic".into()),
        ];
        for err in errors {
            let status = to_status(&err, Some("ns"));
            assert_eq!(status.code(), code_of(&err));
            assert_eq!(is_retryable(&status), err.retryable(), "{err:?}");
            match (from_status(&status), &err) {
                (BackendError::InvalidArgument { field, limit, .. }, BackendError::InvalidArgument { .. }) => {
                    assert_eq!(field, "value");
                    assert_eq!(limit.as_deref(), Some("max_value_bytes=4"));
                }
                (back, _) => assert_eq!(std::mem::discriminant(&back), std::mem::discriminant(&err)),
            }
        }
    }
}
