//! Per-namespace request limits, enforced at the edge (the gRPC services) before a
//! request reaches any backend, so every backend sees the same bounds.

use serde::{Deserialize, Serialize};

use crate::validation::Problems;
use crate::{BackendError, BackendResult};

/// A namespace's request limits (`limits:` in the config); requests over one get INVALID_ARGUMENT naming the field and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Longest key, in bytes (keys must also be non-empty).
    pub max_key_bytes: u32,
    /// Largest value or payload, in bytes.
    pub max_value_bytes: u32,
    /// Most entries in one batch call or one time-series append.
    pub max_batch_entries: u32,
    /// Most keys in one scan page, and the page size when a request asks for 0.
    pub max_scan_page: u32,
    /// Most events one query returns, and the limit used when a request asks for 0.
    pub max_query_events: u32,
    /// Longest topic, queue or stream name, in bytes.
    pub max_name_bytes: u32,
    /// Requests served at once in this namespace; more fail with RESOURCE_EXHAUSTED. A
    /// request holds its place from its headers on, while its body is read.
    pub max_in_flight: u32,
    /// Largest request message, in bytes; a message declaring more is refused from its
    /// 5-byte gRPC prefix, before any of it is buffered.
    pub max_message_bytes: u32,
    /// Request message bytes this namespace's requests hold at once (bytes that arrived,
    /// until their request is done); past it, RESOURCE_EXHAUSTED. Its share of the
    /// proxy's `transport.max_buffered_request_bytes`, so one namespace cannot take it all.
    pub max_buffered_bytes: u32,
    /// Subscriptions open at once in this namespace; more fail with RESOURCE_EXHAUSTED.
    pub max_subscriptions: u32,
    /// Messages a subscription may hold for a subscriber that has not read them; past
    /// this (or `max_subscriber_buffer_bytes`) the subscription ends with
    /// RESOURCE_EXHAUSTED "slow consumer".
    pub max_subscriber_buffer: u32,
    /// Bytes of payload a subscription may hold for a subscriber that has not read them.
    pub max_subscriber_buffer_bytes: u32,
    /// Largest response message, in bytes: a batch get, query or aggregate whose answer
    /// would be larger gets INVALID_ARGUMENT naming the limit; a receive returns the
    /// messages that fit and gives the rest back to the queue at once. Responses not yet
    /// read by their clients hold their bytes from `max_buffered_bytes`.
    pub max_response_bytes: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 1024,
            max_value_bytes: 1024 * 1024,
            max_batch_entries: 1000,
            max_scan_page: 1000,
            max_query_events: 10_000,
            max_name_bytes: 256,
            max_in_flight: 1024,
            max_message_bytes: 16 * 1024 * 1024,
            max_buffered_bytes: 64 * 1024 * 1024,
            max_subscriptions: 256,
            max_subscriber_buffer: 1024,
            max_subscriber_buffer_bytes: 16 * 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The largest `max_message_bytes` a namespace may set.
const MAX_MESSAGE_BYTES: u32 = 1 << 30;

fn over(field: &str, what: &str, limit_name: &str, limit: u32, actual: usize) -> BackendError {
    BackendError::InvalidArgument {
        field: field.to_string(),
        message: format!("{what} is {actual}, over the limit {limit_name}={limit}"),
        limit: Some(format!("{limit_name}={limit}")),
    }
}

impl Limits {
    /// Every limit out of its bounds, or that leaves another unusable; `field` names a
    /// limit in the config (`namespaces.a.limits.max_in_flight`).
    pub(crate) fn problems(&self, field: &dyn Fn(&str) -> String, problems: &mut Problems) {
        for (limit, value, least) in [
            ("max_in_flight", self.max_in_flight, 1),
            ("max_message_bytes", self.max_message_bytes, 1024),
            ("max_subscriptions", self.max_subscriptions, 1),
            ("max_subscriber_buffer", self.max_subscriber_buffer, 1),
            ("max_subscriber_buffer_bytes", self.max_subscriber_buffer_bytes, 1024),
        ] {
            if value < least {
                problems.add(field(limit), format!("must be at least {least}"));
            }
        }
        // A limit below the one it must hold, and what would then never work.
        for (limit, value, needed, of, consequence) in [
            (
                "max_buffered_bytes",
                self.max_buffered_bytes,
                "max_message_bytes",
                self.max_message_bytes,
                "or its largest message could never be read",
            ),
            (
                "max_subscriber_buffer_bytes",
                self.max_subscriber_buffer_bytes,
                "max_value_bytes",
                self.max_value_bytes,
                "or a message of the largest size could never be delivered",
            ),
            (
                "max_response_bytes",
                self.max_response_bytes,
                "max_value_bytes + max_key_bytes + 1024",
                self.max_value_bytes
                    .saturating_add(self.max_key_bytes)
                    .saturating_add(1024),
                "or a value of the largest size could never be read",
            ),
        ] {
            if value < of {
                problems.add(field(limit), format!("must be at least {needed} ({of}), {consequence}"));
            }
        }
        if self.max_message_bytes > MAX_MESSAGE_BYTES {
            problems.add(
                field("max_message_bytes"),
                format!("must be at most {MAX_MESSAGE_BYTES} (1 GiB)"),
            );
        }
    }

    /// The largest response, and the limit that sets it: `max_response_bytes`, or
    /// `max_buffered_bytes` when smaller (a response is held from it until sent).
    pub(crate) fn response_limit(&self) -> (&'static str, u32) {
        if self.max_buffered_bytes < self.max_response_bytes {
            ("max_buffered_bytes", self.max_buffered_bytes)
        } else {
            ("max_response_bytes", self.max_response_bytes)
        }
    }

    /// A response of `bytes` (encoded): over [`Limits::response_limit`], INVALID_ARGUMENT
    /// naming `field`, the request field that asks for less.
    pub(crate) fn check_response(&self, field: &str, bytes: usize) -> BackendResult<()> {
        let (name, limit) = self.response_limit();
        if bytes > limit as usize {
            return Err(over(field, "the response's size in bytes", name, limit, bytes));
        }
        Ok(())
    }

    pub(crate) fn check_key(&self, field: &str, key: &[u8]) -> BackendResult<()> {
        if key.is_empty() {
            return Err(BackendError::invalid(field, "must not be empty"));
        }
        if key.len() > self.max_key_bytes as usize {
            return Err(over(
                field,
                "size in bytes",
                "max_key_bytes",
                self.max_key_bytes,
                key.len(),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_value(&self, field: &str, value: &[u8]) -> BackendResult<()> {
        if value.len() > self.max_value_bytes as usize {
            return Err(over(
                field,
                "size in bytes",
                "max_value_bytes",
                self.max_value_bytes,
                value.len(),
            ));
        }
        Ok(())
    }

    pub(crate) fn check_batch(&self, field: &str, entries: usize) -> BackendResult<()> {
        if entries == 0 {
            return Err(BackendError::invalid(field, "must hold at least one entry"));
        }
        if entries > self.max_batch_entries as usize {
            return Err(over(
                field,
                "number of entries",
                "max_batch_entries",
                self.max_batch_entries,
                entries,
            ));
        }
        Ok(())
    }

    /// A topic, queue or stream name: non-empty, bounded, printable UTF-8.
    pub(crate) fn check_name(&self, field: &str, name: &str) -> BackendResult<()> {
        if name.is_empty() {
            return Err(BackendError::invalid(field, "must not be empty"));
        }
        if name.len() > self.max_name_bytes as usize {
            return Err(over(
                field,
                "size in bytes",
                "max_name_bytes",
                self.max_name_bytes,
                name.len(),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(BackendError::invalid(field, "must not contain control characters"));
        }
        Ok(())
    }

    /// The scan page size to use: the request's, or the maximum for 0.
    pub(crate) fn scan_page(&self, requested: u32) -> BackendResult<u32> {
        match requested {
            0 => Ok(self.max_scan_page),
            n if n > self.max_scan_page => Err(over(
                "limit",
                "page size",
                "max_scan_page",
                self.max_scan_page,
                n as usize,
            )),
            n => Ok(n),
        }
    }

    /// The query limit to use: the request's, or the maximum for 0.
    pub(crate) fn query_events(&self, requested: u32) -> BackendResult<u32> {
        match requested {
            0 => Ok(self.max_query_events),
            n if n > self.max_query_events => Err(over(
                "limit",
                "event limit",
                "max_query_events",
                self.max_query_events,
                n as usize,
            )),
            n => Ok(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_field_and_limit() {
        let limits = Limits {
            max_value_bytes: 4,
            ..Limits::default()
        };
        assert!(limits.check_value("value", b"1234").is_ok());
        let err = limits.check_value("value", b"12345").unwrap_err();
        match err {
            BackendError::InvalidArgument { field, limit, message } => {
                assert_eq!(field, "value");
                assert_eq!(limit.as_deref(), Some("max_value_bytes=4"));
                assert!(message.contains("5"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(limits.check_key("key", b"").is_err());
        assert_eq!(limits.scan_page(0).unwrap(), limits.max_scan_page);
        assert!(limits.scan_page(limits.max_scan_page + 1).is_err());
    }
}
