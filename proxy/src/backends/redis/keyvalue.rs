//! keyvalue_* on Redis strings. Scan reads matching names with SCAN and pages through
//! them in byte order itself, since SCAN's own cursor has no order.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::Redis;
use crate::BackendError;
use crate::interfaces::{KeyValueBasic, KeyValueBatch, KeyValueScan, KeyValueTtl, ScanPage, TtlState};

/// Keys SCAN is asked for per round trip.
const SCAN_BATCH: usize = 1000;

impl Redis {
    fn key(&self, key: &[u8]) -> Vec<u8> {
        self.name("k", key)
    }

    /// Every live key under `prefix`, without the driver's own prefix, sorted.
    async fn keys_under(&self, prefix: &[u8]) -> Result<Vec<Bytes>, BackendError> {
        let mut pattern = glob_escape(&self.key(b""));
        pattern.extend(glob_escape(prefix));
        pattern.push(b'*');
        let strip = self.key(b"").len();
        let mut keys = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<Vec<u8>>) = self
                .run(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(SCAN_BATCH)
                        .clone(),
                )
                .await?;
            keys.extend(batch.into_iter().map(|k| Bytes::copy_from_slice(&k[strip..])));
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key more than once.
        keys.sort();
        keys.dedup();
        Ok(keys)
    }
}

/// Escapes glob metacharacters so a key prefix matches only itself in MATCH.
fn glob_escape(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for &b in raw {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

/// Milliseconds for PX/PEXPIRE: at least 1, since 0 is an error in Redis.
fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

#[async_trait]
impl KeyValueBasic for Redis {
    async fn set(&self, key: Bytes, value: Bytes) -> Result<(), BackendError> {
        self.run(redis::cmd("SET").arg(self.key(&key)).arg(value.as_ref()).clone())
            .await
    }

    async fn get(&self, key: Bytes) -> Result<Option<Bytes>, BackendError> {
        let value: Option<Vec<u8>> = self.run(redis::cmd("GET").arg(self.key(&key)).clone()).await?;
        Ok(value.map(Bytes::from))
    }

    async fn delete(&self, key: Bytes) -> Result<bool, BackendError> {
        let n: u64 = self.run(redis::cmd("DEL").arg(self.key(&key)).clone()).await?;
        Ok(n > 0)
    }

    async fn exists(&self, key: Bytes) -> Result<bool, BackendError> {
        let n: u64 = self.run(redis::cmd("EXISTS").arg(self.key(&key)).clone()).await?;
        Ok(n > 0)
    }
}

#[async_trait]
impl KeyValueTtl for Redis {
    async fn set_with_ttl(&self, key: Bytes, value: Bytes, ttl: Duration) -> Result<(), BackendError> {
        let cmd = redis::cmd("SET")
            .arg(self.key(&key))
            .arg(value.as_ref())
            .arg("PX")
            .arg(millis(ttl))
            .clone();
        self.run(cmd).await
    }

    async fn expire(&self, key: Bytes, ttl: Duration) -> Result<bool, BackendError> {
        let n: u64 = self
            .run(redis::cmd("PEXPIRE").arg(self.key(&key)).arg(millis(ttl)).clone())
            .await?;
        Ok(n == 1)
    }

    async fn ttl(&self, key: Bytes) -> Result<TtlState, BackendError> {
        let ms: i64 = self.run(redis::cmd("PTTL").arg(self.key(&key)).clone()).await?;
        Ok(match ms {
            -2 => TtlState::Missing,
            -1 => TtlState::Persistent,
            ms => TtlState::Expiring(Duration::from_millis(ms.max(0) as u64)),
        })
    }

    async fn persist(&self, key: Bytes) -> Result<bool, BackendError> {
        let n: u64 = self.run(redis::cmd("PERSIST").arg(self.key(&key)).clone()).await?;
        Ok(n == 1)
    }
}

#[async_trait]
impl KeyValueScan for Redis {
    async fn scan(&self, prefix: Bytes, limit: u32, cursor: Option<Bytes>) -> Result<ScanPage, BackendError> {
        let keys = self.keys_under(&prefix).await?;
        // The cursor is the last key returned: the next page starts after it.
        let start = cursor.map_or(0, |c| keys.partition_point(|k| k <= &c));
        let rest = &keys[start..];
        let page: Vec<Bytes> = rest.iter().take(limit as usize).cloned().collect();
        let next_cursor = (rest.len() > page.len()).then(|| page.last().cloned()).flatten();
        Ok(ScanPage {
            keys: page,
            next_cursor,
        })
    }

    async fn count(&self, prefix: Bytes) -> Result<u64, BackendError> {
        Ok(self.keys_under(&prefix).await?.len() as u64)
    }
}

#[async_trait]
impl KeyValueBatch for Redis {
    async fn batch_set(&self, entries: Vec<(Bytes, Bytes)>) -> Result<Vec<bool>, BackendError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (key, value) in &entries {
            pipe.cmd("SET").arg(self.key(key)).arg(value.as_ref()).ignore();
        }
        self.run::<()>(pipe).await?;
        Ok(vec![true; entries.len()])
    }

    async fn batch_get(&self, keys: Vec<Bytes>) -> Result<Vec<Option<Bytes>>, BackendError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = redis::cmd("MGET");
        for key in &keys {
            cmd.arg(self.key(key));
        }
        let values: Vec<Option<Vec<u8>>> = self.run(cmd).await?;
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    async fn batch_delete(&self, keys: Vec<Bytes>) -> Result<Vec<bool>, BackendError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("DEL").arg(self.key(key));
        }
        let deleted: Vec<u64> = self.run(pipe).await?;
        Ok(deleted.into_iter().map(|n| n > 0).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_metacharacters_are_escaped() {
        assert_eq!(glob_escape(b"a*b?[c]\\"), b"a\\*b\\?\\[c\\]\\\\".to_vec());
        assert_eq!(glob_escape(b"plain:#1"), b"plain:#1".to_vec());
    }

    #[test]
    fn ttl_is_never_zero_milliseconds() {
        assert_eq!(millis(Duration::from_micros(10)), 1);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
    }
}
