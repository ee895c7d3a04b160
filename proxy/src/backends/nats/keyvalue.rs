//! keyvalue_basic on a JetStream key-value bucket (one per prefix, file storage, one
//! revision kept). Keys are base64url-encoded, since bucket keys allow few characters.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;

use async_nats::jetstream::kv;

use super::{Nats, error};
use crate::BackendError;
use crate::backends::driver::bounded;
use crate::interfaces::KeyValueBasic;

impl Nats {
    async fn bucket(&self) -> Result<&kv::Store, BackendError> {
        self.kv
            .get_or_try_init(|| {
                bounded("nats", self.timeout, async {
                    let name = format!("prism_kv_{}", self.tag);
                    if let Ok(store) = self.jetstream.get_key_value(&name).await {
                        return Ok(store);
                    }
                    self.jetstream
                        .create_key_value(kv::Config {
                            bucket: name,
                            description: format!("Prism keyvalue for prefix {:?}", self.prefix),
                            history: 1,
                            storage: async_nats::jetstream::stream::StorageType::File,
                            ..Default::default()
                        })
                        .await
                        .map_err(|e| error("creating the key-value bucket", e))
                })
            })
            .await
    }

    /// The live entry of `key`: its revision, or `None` when missing or deleted.
    async fn live_revision(&self, store: &kv::Store, key: &str) -> Result<Option<u64>, BackendError> {
        let entry = store.entry(key).await.map_err(|e| error("get", e))?;
        Ok(entry.filter(|e| e.operation == kv::Operation::Put).map(|e| e.revision))
    }
}

fn encode(key: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(key)
}

#[async_trait]
impl KeyValueBasic for Nats {
    async fn set(&self, key: Bytes, value: Bytes) -> Result<(), BackendError> {
        let store = self.bucket().await?;
        bounded("nats", self.timeout, async {
            store
                .put(encode(&key), value)
                .await
                .map_err(|e| error("put", e))
                .map(|_| ())
        })
        .await
    }

    async fn get(&self, key: Bytes) -> Result<Option<Bytes>, BackendError> {
        let store = self.bucket().await?;
        bounded("nats", self.timeout, async {
            store.get(encode(&key)).await.map_err(|e| error("get", e))
        })
        .await
    }

    async fn delete(&self, key: Bytes) -> Result<bool, BackendError> {
        let store = self.bucket().await?;
        let key = encode(&key);
        bounded("nats", self.timeout, async {
            // Deleting at the revision just read: a concurrent write makes us look again,
            // so "existed" is exact.
            for _ in 0..16 {
                let Some(revision) = self.live_revision(store, &key).await? else {
                    return Ok(false);
                };
                if store.delete_expect_revision(&key, Some(revision)).await.is_ok() {
                    return Ok(true);
                }
            }
            Err(BackendError::Unavailable(
                "nats: delete kept racing with writes; retry".into(),
            ))
        })
        .await
    }

    async fn exists(&self, key: Bytes) -> Result<bool, BackendError> {
        let store = self.bucket().await?;
        let key = encode(&key);
        bounded("nats", self.timeout, async {
            Ok(self.live_revision(store, &key).await?.is_some())
        })
        .await
    }
}
