//! The wall clock, for timestamps that leave the process (publish times).

/// Milliseconds since the Unix epoch by the wall clock (0 before 1970).
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
