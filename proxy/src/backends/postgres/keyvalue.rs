//! keyvalue_* on `prism_kv`. An expired row is invisible to every statement (the
//! `LIVE` condition); it is overwritten by the next set of its key.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Postgres, column};
use crate::interfaces::{KeyValueBasic, KeyValueBatch, KeyValueScan, KeyValueTtl, ScanPage, TtlState};
use crate::{BackendError, BackendResult};

const LIVE: &str = "(expires_at IS NULL OR expires_at > now())";

impl Postgres {
    /// A stored key without this namespace's prefix (INTERNAL if the server returned a
    /// key outside it).
    fn strip(&self, key: Vec<u8>) -> Result<Bytes, BackendError> {
        if !key.starts_with(self.prefix.as_bytes()) {
            return Err(BackendError::Internal(
                "postgres: a key outside this namespace's prefix came back".into(),
            ));
        }
        Ok(Bytes::from(key).slice(self.prefix.len()..))
    }

    async fn upsert(&self, key: &[u8], value: &[u8], ttl: Option<Duration>) -> Result<(), BackendError> {
        let seconds = ttl.map(|t| t.as_secs_f64());
        self.execute(
            "INSERT INTO prism_kv (key, value, expires_at)
             VALUES ($1, $2, now() + make_interval(secs => $3::float8))
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            &[&self.prefixed(key), &value, &seconds],
        )
        .await
        .map(|_| ())
    }
}

/// The first key after every key starting with `prefix`; `None` when there is none
/// (the prefix is empty or all 0xff).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[async_trait]
impl KeyValueBasic for Postgres {
    async fn set(&self, key: Bytes, value: Bytes) -> Result<(), BackendError> {
        self.upsert(&key, &value, None).await
    }

    async fn get(&self, key: Bytes) -> Result<Option<Bytes>, BackendError> {
        let rows = self
            .query(
                &format!("SELECT value FROM prism_kv WHERE key = $1 AND {LIVE}"),
                &[&self.prefixed(&key)],
            )
            .await?;
        rows.first()
            .map(|row| column::<Vec<u8>>(row, 0).map(Bytes::from))
            .transpose()
    }

    async fn delete(&self, key: Bytes) -> Result<bool, BackendError> {
        let rows = self
            .query(
                &format!("DELETE FROM prism_kv WHERE key = $1 RETURNING {LIVE}"),
                &[&self.prefixed(&key)],
            )
            .await?;
        Ok(match rows.first() {
            Some(row) => column::<bool>(row, 0)?,
            None => false,
        })
    }

    async fn exists(&self, key: Bytes) -> Result<bool, BackendError> {
        let rows = self
            .query(
                &format!("SELECT 1 FROM prism_kv WHERE key = $1 AND {LIVE}"),
                &[&self.prefixed(&key)],
            )
            .await?;
        Ok(!rows.is_empty())
    }
}

#[async_trait]
impl KeyValueTtl for Postgres {
    async fn set_with_ttl(&self, key: Bytes, value: Bytes, ttl: Duration) -> Result<(), BackendError> {
        self.upsert(&key, &value, Some(ttl)).await
    }

    async fn expire(&self, key: Bytes, ttl: Duration) -> Result<bool, BackendError> {
        let n = self
            .execute(
                &format!(
                    "UPDATE prism_kv SET expires_at = now() + make_interval(secs => $2::float8) WHERE key = $1 AND {LIVE}"
                ),
                &[&self.prefixed(&key), &ttl.as_secs_f64()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn ttl(&self, key: Bytes) -> Result<TtlState, BackendError> {
        let rows = self
            .query(
                &format!(
                    "SELECT EXTRACT(EPOCH FROM expires_at - now())::float8 FROM prism_kv WHERE key = $1 AND {LIVE}"
                ),
                &[&self.prefixed(&key)],
            )
            .await?;
        match rows.first().map(|row| column::<Option<f64>>(row, 0)).transpose()? {
            None => Ok(TtlState::Missing),
            Some(None) => Ok(TtlState::Persistent),
            Some(Some(seconds)) => expiring(seconds),
        }
    }

    async fn persist(&self, key: Bytes) -> Result<bool, BackendError> {
        let n = self
            .execute(
                "UPDATE prism_kv SET expires_at = NULL WHERE key = $1 AND expires_at > now()",
                &[&self.prefixed(&key)],
            )
            .await?;
        Ok(n == 1)
    }
}

#[async_trait]
impl KeyValueScan for Postgres {
    async fn scan(&self, prefix: Bytes, limit: u32, cursor: Option<Bytes>) -> Result<ScanPage, BackendError> {
        let start = self.prefixed(&prefix);
        let end = prefix_end(&start);
        let after = cursor.map(|c| self.prefixed(&c));
        // One more than asked tells whether another page follows.
        let fetch = i64::from(limit) + 1;
        let rows = self
            .query(
                &format!(
                    "SELECT key FROM prism_kv
                     WHERE key >= $1 AND ($2::bytea IS NULL OR key < $2) AND ($3::bytea IS NULL OR key > $3) AND {LIVE}
                     ORDER BY key LIMIT $4"
                ),
                &[&start, &end, &after, &fetch],
            )
            .await?;
        let mut keys: Vec<Bytes> = rows
            .iter()
            .map(|row| self.strip(column(row, 0)?))
            .collect::<BackendResult<_>>()?;
        let more = keys.len() > limit as usize;
        keys.truncate(limit as usize);
        let next_cursor = if more { keys.last().cloned() } else { None };
        Ok(ScanPage { keys, next_cursor })
    }

    async fn count(&self, prefix: Bytes) -> Result<u64, BackendError> {
        let start = self.prefixed(&prefix);
        let end = prefix_end(&start);
        let rows = self
            .query(
                &format!(
                    "SELECT count(*) FROM prism_kv WHERE key >= $1 AND ($2::bytea IS NULL OR key < $2) AND {LIVE}"
                ),
                &[&start, &end],
            )
            .await?;
        let count = match rows.first() {
            Some(row) => column::<i64>(row, 0)?,
            None => 0,
        };
        Ok(count.max(0) as u64)
    }
}

#[async_trait]
impl KeyValueBatch for Postgres {
    async fn batch_set(&self, entries: Vec<(Bytes, Bytes)>) -> Result<Vec<bool>, BackendError> {
        // One upsert cannot touch a row twice: the last value given for a key wins.
        let mut last: HashMap<&[u8], &[u8]> = HashMap::new();
        for (key, value) in &entries {
            last.insert(key, value);
        }
        let (keys, values): (Vec<Vec<u8>>, Vec<&[u8]>) = last.into_iter().map(|(k, v)| (self.prefixed(k), v)).unzip();
        self.execute(
            "INSERT INTO prism_kv (key, value, expires_at) SELECT k, v, NULL FROM unnest($1::bytea[], $2::bytea[]) AS t(k, v)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = NULL",
            &[&keys, &values],
        )
        .await?;
        Ok(vec![true; entries.len()])
    }

    async fn batch_get(&self, keys: Vec<Bytes>) -> Result<Vec<Option<Bytes>>, BackendError> {
        let wanted: Vec<Vec<u8>> = keys.iter().map(|k| self.prefixed(k)).collect();
        let rows = self
            .query(
                &format!("SELECT key, value FROM prism_kv WHERE key = ANY($1) AND {LIVE}"),
                &[&wanted],
            )
            .await?;
        let found: HashMap<Bytes, Bytes> = rows
            .iter()
            .map(|row| Ok((self.strip(column(row, 0)?)?, Bytes::from(column::<Vec<u8>>(row, 1)?))))
            .collect::<BackendResult<_>>()?;
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    async fn batch_delete(&self, keys: Vec<Bytes>) -> Result<Vec<bool>, BackendError> {
        let wanted: Vec<Vec<u8>> = keys.iter().map(|k| self.prefixed(k)).collect();
        let rows = self
            .query(
                &format!("DELETE FROM prism_kv WHERE key = ANY($1) RETURNING key, {LIVE}"),
                &[&wanted],
            )
            .await?;
        let mut deleted = HashSet::new();
        for row in &rows {
            if column::<bool>(row, 1)? {
                deleted.insert(self.strip(column(row, 0)?)?);
            }
        }
        // A key named twice was deleted by its first mention only.
        Ok(keys.iter().map(|k| deleted.remove(k)).collect())
    }
}

/// The remaining life the server computed, which a reply could make infinite or NaN.
fn expiring(seconds: f64) -> Result<TtlState, BackendError> {
    let bad = || BackendError::Internal(format!("postgres: a remaining life of {seconds} s"));
    if !seconds.is_finite() {
        return Err(bad());
    }
    Duration::try_from_secs_f64(seconds.max(0.0))
        .map(TtlState::Expiring)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remaining_life_the_reply_makes_infinite_is_an_error_not_a_panic() {
        assert_eq!(expiring(1.5).unwrap(), TtlState::Expiring(Duration::from_millis(1500)));
        assert_eq!(expiring(-3.0).unwrap(), TtlState::Expiring(Duration::ZERO));
        for bad in [f64::INFINITY, f64::NAN] {
            assert!(matches!(expiring(bad), Err(BackendError::Internal(_))), "{bad}");
        }
    }

    #[test]
    fn prefix_end_is_the_first_key_past_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
