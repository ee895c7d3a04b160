//! Key-value store: an ordered map (scans walk it in key order) with lazy expiry plus a
//! periodic sweep that frees expired entries nobody reads.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Weak};

use parking_lot::RwLock;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio::time::Instant;

use crate::BackendError;
use crate::interfaces::{KeyValueBasic, KeyValueBatch, KeyValueScan, KeyValueTtl, ScanPage, TtlState};

const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    expires_at: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

type Map = BTreeMap<Bytes, Entry>;

/// In-memory keys and values with expiry: keyvalue_basic, _ttl, _scan and _batch.
#[derive(Default)]
pub struct KvStore {
    map: Arc<RwLock<Map>>,
    sweeper_started: std::sync::OnceLock<()>,
}

impl KvStore {
    fn read(&self) -> parking_lot::RwLockReadGuard<'_, Map> {
        self.map.read()
    }

    fn write(&self) -> parking_lot::RwLockWriteGuard<'_, Map> {
        self.start_sweeper();
        self.map.write()
    }

    /// Starts the sweeper on first write, from inside the runtime.
    fn start_sweeper(&self) {
        self.sweeper_started.get_or_init(|| {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(sweep(Arc::downgrade(&self.map)));
            }
        });
    }

    fn live_value(&self, key: &[u8]) -> Option<Bytes> {
        let map = self.read();
        let entry = map.get(key)?;
        // Only an entry with an expiry needs the clock (a Get's hot path).
        entry
            .expires_at
            .is_none_or(|at| at > Instant::now())
            .then(|| entry.value.clone())
    }

    fn put(&self, key: Bytes, value: Bytes, expires_at: Option<Instant>) {
        self.write().insert(key, Entry { value, expires_at });
    }

    fn remove(&self, key: &[u8]) -> bool {
        let now = Instant::now();
        self.write().remove(key).is_some_and(|e| e.live(now))
    }

    /// Number of entries held, expired or not (for tests of the sweeper).
    pub fn stored_entries(&self) -> usize {
        self.read().len()
    }
}

async fn sweep(map: Weak<RwLock<Map>>) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(map) = map.upgrade() else { return };
        let now = Instant::now();
        map.write().retain(|_, e| e.live(now));
    }
}

fn ttl_deadline(ttl: Duration) -> Result<Instant, BackendError> {
    if ttl.is_zero() {
        return Err(BackendError::invalid("ttl_ms", "must be greater than 0"));
    }
    Instant::now()
        .checked_add(ttl)
        .ok_or_else(|| BackendError::invalid("ttl_ms", "is too large"))
}

#[async_trait]
impl KeyValueBasic for KvStore {
    async fn set(&self, key: Bytes, value: Bytes) -> Result<(), BackendError> {
        self.put(key, value, None);
        Ok(())
    }

    async fn get(&self, key: Bytes) -> Result<Option<Bytes>, BackendError> {
        Ok(self.live_value(&key))
    }

    async fn delete(&self, key: Bytes) -> Result<bool, BackendError> {
        Ok(self.remove(&key))
    }

    async fn exists(&self, key: Bytes) -> Result<bool, BackendError> {
        Ok(self.live_value(&key).is_some())
    }
}

#[async_trait]
impl KeyValueTtl for KvStore {
    async fn set_with_ttl(&self, key: Bytes, value: Bytes, ttl: Duration) -> Result<(), BackendError> {
        let deadline = ttl_deadline(ttl)?;
        self.put(key, value, Some(deadline));
        Ok(())
    }

    async fn expire(&self, key: Bytes, ttl: Duration) -> Result<bool, BackendError> {
        let deadline = ttl_deadline(ttl)?;
        let now = Instant::now();
        let mut map = self.write();
        match map.get_mut(&key[..]) {
            Some(entry) if entry.live(now) => {
                entry.expires_at = Some(deadline);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn ttl(&self, key: Bytes) -> Result<TtlState, BackendError> {
        let now = Instant::now();
        Ok(match self.read().get(&key[..]) {
            Some(entry) if entry.live(now) => match entry.expires_at {
                None => TtlState::Persistent,
                Some(at) => TtlState::Expiring(at - now),
            },
            _ => TtlState::Missing,
        })
    }

    async fn persist(&self, key: Bytes) -> Result<bool, BackendError> {
        let now = Instant::now();
        let mut map = self.write();
        match map.get_mut(&key[..]) {
            Some(entry) if entry.live(now) => Ok(entry.expires_at.take().is_some()),
            _ => Ok(false),
        }
    }
}

#[async_trait]
impl KeyValueScan for KvStore {
    async fn scan(&self, prefix: Bytes, limit: u32, cursor: Option<Bytes>) -> Result<ScanPage, BackendError> {
        if limit == 0 {
            return Err(BackendError::invalid("limit", "must be at least 1"));
        }
        let limit = limit as usize;
        let now = Instant::now();
        let start = match &cursor {
            // The cursor is the last key of the previous page: resume strictly after it,
            // so a key is never returned twice even if the map changed in between.
            Some(last) if last[..] >= prefix[..] => Bound::Excluded(last.clone()),
            _ => Bound::Included(prefix.clone()),
        };
        let map = self.read();
        let mut keys: Vec<Bytes> = map
            .range((start, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, e)| e.live(now))
            .map(|(k, _)| k.clone())
            .take(limit + 1)
            .collect();
        let next_cursor = if keys.len() > limit {
            keys.truncate(limit);
            keys.last().cloned()
        } else {
            None
        };
        Ok(ScanPage { keys, next_cursor })
    }

    async fn count(&self, prefix: Bytes) -> Result<u64, BackendError> {
        let now = Instant::now();
        let map = self.read();
        let count = map
            .range::<[u8], _>((Bound::Included(&prefix[..]), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, e)| e.live(now))
            .count();
        Ok(count as u64)
    }
}

#[async_trait]
impl KeyValueBatch for KvStore {
    async fn batch_set(&self, entries: Vec<(Bytes, Bytes)>) -> Result<Vec<bool>, BackendError> {
        let mut map = self.write();
        Ok(entries
            .into_iter()
            .map(|(key, value)| {
                map.insert(
                    key,
                    Entry {
                        value,
                        expires_at: None,
                    },
                );
                true
            })
            .collect())
    }

    async fn batch_get(&self, keys: Vec<Bytes>) -> Result<Vec<Option<Bytes>>, BackendError> {
        let now = Instant::now();
        let map = self.read();
        Ok(keys
            .iter()
            .map(|k| map.get(&k[..]).filter(|e| e.live(now)).map(|e| e.value.clone()))
            .collect())
    }

    async fn batch_delete(&self, keys: Vec<Bytes>) -> Result<Vec<bool>, BackendError> {
        let now = Instant::now();
        let mut map = self.write();
        Ok(keys
            .iter()
            .map(|k| map.remove(&k[..]).is_some_and(|e| e.live(now)))
            .collect())
    }
}
