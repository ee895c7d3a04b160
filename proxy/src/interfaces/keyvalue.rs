use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::BackendResult;

/// keyvalue_basic. A missing key is `None`/`false`, never an error; an empty value is
/// present.
#[async_trait]
pub trait KeyValueBasic: Send + Sync {
    /// Stores the value, replacing any previous one and clearing any expiry.
    async fn set(&self, key: Bytes, value: Bytes) -> BackendResult<()>;
    /// The value, or `None` when the key is missing (or expired).
    async fn get(&self, key: Bytes) -> BackendResult<Option<Bytes>>;
    /// Returns whether the key existed.
    async fn delete(&self, key: Bytes) -> BackendResult<bool>;
    /// Whether the key is present (and not expired).
    async fn exists(&self, key: Bytes) -> BackendResult<bool>;
}

/// Remaining life of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlState {
    /// No such key.
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires after this much longer.
    Expiring(Duration),
}

/// keyvalue_ttl. Expired keys are invisible to every interface.
#[async_trait]
pub trait KeyValueTtl: Send + Sync {
    /// Stores the value, to expire after `ttl`.
    async fn set_with_ttl(&self, key: Bytes, value: Bytes, ttl: Duration) -> BackendResult<()>;
    /// Sets the expiry of an existing key; `false` when the key is missing.
    async fn expire(&self, key: Bytes, ttl: Duration) -> BackendResult<bool>;
    /// How long the key has left to live.
    async fn ttl(&self, key: Bytes) -> BackendResult<TtlState>;
    /// Removes the expiry; `true` only when the key existed and had one.
    async fn persist(&self, key: Bytes) -> BackendResult<bool>;
}

/// One page of a scan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanPage {
    /// Matching keys, in byte order.
    pub keys: Vec<Bytes>,
    /// Where the next page starts; `None` when the scan is complete.
    pub next_cursor: Option<Bytes>,
}

/// keyvalue_scan. Keys come in byte order; every key present for the whole scan is
/// returned exactly once across pages.
#[async_trait]
pub trait KeyValueScan: Send + Sync {
    /// Up to `limit` keys starting with `prefix`, after `cursor`.
    async fn scan(&self, prefix: Bytes, limit: u32, cursor: Option<Bytes>) -> BackendResult<ScanPage>;
    /// How many keys start with `prefix`.
    async fn count(&self, prefix: Bytes) -> BackendResult<u64>;
}

/// keyvalue_batch. Results are per key, in request order.
#[async_trait]
pub trait KeyValueBatch: Send + Sync {
    /// Stores each entry; per entry, whether it was stored.
    async fn batch_set(&self, entries: Vec<(Bytes, Bytes)>) -> BackendResult<Vec<bool>>;
    /// Per key, its value or `None`.
    async fn batch_get(&self, keys: Vec<Bytes>) -> BackendResult<Vec<Option<Bytes>>>;
    /// Per key, whether it existed.
    async fn batch_delete(&self, keys: Vec<Bytes>) -> BackendResult<Vec<bool>>;
}
