//! gRPC services of the key-value interfaces.

use std::sync::Arc;
use std::time::Duration;

use prism_proto::keyvalue::v1::{
    self as pb, key_value_basic_server, key_value_batch_server, key_value_scan_server, key_value_ttl_server,
};
use tonic::{Request, Response, Status};

use super::Router;
use crate::Operation;
use crate::{BackendError, wire};

pub struct KeyValueService {
    router: Arc<Router>,
}

impl KeyValueService {
    pub fn new(router: Arc<Router>) -> KeyValueService {
        KeyValueService { router }
    }
}

fn ttl(field: &str, ms: u64) -> Result<Duration, BackendError> {
    if ms == 0 {
        return Err(BackendError::invalid(field, "must be greater than 0"));
    }
    Ok(Duration::from_millis(ms))
}

#[tonic::async_trait]
impl key_value_basic_server::KeyValueBasic for KeyValueService {
    async fn set(&self, request: Request<pb::SetRequest>) -> Result<Response<pb::SetResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvSet,
                |b| &b.keyvalue_basic,
                |kv, limits, req| async move {
                    limits.check_key("key", &req.key)?;
                    limits.check_value("value", &req.value)?;
                    kv.set(req.key, req.value).await?;
                    Ok(pb::SetResponse {})
                },
            )
            .await
    }

    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvGet,
                |b| &b.keyvalue_basic,
                |kv, limits, req| async move {
                    limits.check_key("key", &req.key)?;
                    let value = kv.get(req.key).await?;
                    Ok(pb::GetResponse {
                        found: value.is_some(),
                        value: value.unwrap_or_default(),
                    })
                },
            )
            .await
    }

    async fn delete(&self, request: Request<pb::DeleteRequest>) -> Result<Response<pb::DeleteResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvDelete,
                |b| &b.keyvalue_basic,
                |kv, limits, req| async move {
                    limits.check_key("key", &req.key)?;
                    Ok(pb::DeleteResponse {
                        existed: kv.delete(req.key).await?,
                    })
                },
            )
            .await
    }

    async fn exists(&self, request: Request<pb::ExistsRequest>) -> Result<Response<pb::ExistsResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvExists,
                |b| &b.keyvalue_basic,
                |kv, limits, req| async move {
                    limits.check_key("key", &req.key)?;
                    Ok(pb::ExistsResponse {
                        exists: kv.exists(req.key).await?,
                    })
                },
            )
            .await
    }
}

#[tonic::async_trait]
impl key_value_ttl_server::KeyValueTtl for KeyValueService {
    async fn set_with_ttl(&self, request: Request<pb::SetWithTtlRequest>) -> Result<Response<pb::SetResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvSetWithTtl,
                |b| &b.keyvalue_ttl,
                |kv, limits, req| async move {
                    limits.check_key("key", &req.key)?;
                    limits.check_value("value", &req.value)?;
                    kv.set_with_ttl(req.key, req.value, ttl("ttl_ms", req.ttl_ms)?).await?;
                    Ok(pb::SetResponse {})
                },
            )
            .await
    }

    async fn expire(&self, request: Request<pb::ExpireRequest>) -> Result<Response<pb::ExpireResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvExpire,
                |b| &b.keyvalue_ttl,
                |kv, limits, req| async move {
                    limits.check_key("key", &req.key)?;
                    Ok(pb::ExpireResponse {
                        applied: kv.expire(req.key, ttl("ttl_ms", req.ttl_ms)?).await?,
                    })
                },
            )
            .await
    }

    async fn ttl(&self, request: Request<pb::TtlRequest>) -> Result<Response<pb::TtlResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvTtl,
                |b| &b.keyvalue_ttl,
                |kv, limits, req| async move {
                    limits.check_key("key", &req.key)?;
                    Ok(wire::ttl_to_proto(kv.ttl(req.key).await?))
                },
            )
            .await
    }

    async fn persist(&self, request: Request<pb::PersistRequest>) -> Result<Response<pb::PersistResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvPersist,
                |b| &b.keyvalue_ttl,
                |kv, limits, req| async move {
                    limits.check_key("key", &req.key)?;
                    Ok(pb::PersistResponse {
                        applied: kv.persist(req.key).await?,
                    })
                },
            )
            .await
    }
}

#[tonic::async_trait]
impl key_value_scan_server::KeyValueScan for KeyValueService {
    async fn scan(&self, request: Request<pb::ScanRequest>) -> Result<Response<pb::ScanResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvScan,
                |b| &b.keyvalue_scan,
                |kv, limits, req| async move {
                    if req.prefix.len() > limits.max_key_bytes as usize {
                        limits.check_key("prefix", &req.prefix)?;
                    }
                    let page_size = limits.scan_page(req.limit)?;
                    let cursor = (!req.cursor.is_empty()).then_some(req.cursor);
                    let page = kv.scan(req.prefix, page_size, cursor).await?;
                    Ok(pb::ScanResponse {
                        keys: page.keys,
                        next_cursor: page.next_cursor.unwrap_or_default(),
                    })
                },
            )
            .await
    }

    async fn count(&self, request: Request<pb::CountRequest>) -> Result<Response<pb::CountResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvCount,
                |b| &b.keyvalue_scan,
                |kv, limits, req| async move {
                    if req.prefix.len() > limits.max_key_bytes as usize {
                        limits.check_key("prefix", &req.prefix)?;
                    }
                    Ok(pb::CountResponse {
                        count: kv.count(req.prefix).await?,
                    })
                },
            )
            .await
    }
}

#[tonic::async_trait]
impl key_value_batch_server::KeyValueBatch for KeyValueService {
    async fn batch_set(&self, request: Request<pb::BatchSetRequest>) -> Result<Response<pb::BatchSetResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvBatchSet,
                |b| &b.keyvalue_batch,
                |kv, limits, req| async move {
                    limits.check_batch("entries", req.entries.len())?;
                    for (i, entry) in req.entries.iter().enumerate() {
                        limits.check_key(&format!("entries[{i}].key"), &entry.key)?;
                        limits.check_value(&format!("entries[{i}].value"), &entry.value)?;
                    }
                    let entries = req.entries.into_iter().map(|e| (e.key, e.value)).collect();
                    Ok(pb::BatchSetResponse {
                        stored: kv.batch_set(entries).await?,
                    })
                },
            )
            .await
    }

    async fn batch_get(&self, request: Request<pb::BatchGetRequest>) -> Result<Response<pb::BatchGetResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvBatchGet,
                |b| &b.keyvalue_batch,
                |kv, limits, req| async move {
                    check_keys(&limits, &req.keys)?;
                    let results = kv
                        .batch_get(req.keys)
                        .await?
                        .into_iter()
                        .map(|v| pb::GetResponse {
                            found: v.is_some(),
                            value: v.unwrap_or_default(),
                        })
                        .collect();
                    Ok(pb::BatchGetResponse { results })
                },
            )
            .await
    }

    async fn batch_delete(
        &self,
        request: Request<pb::BatchDeleteRequest>,
    ) -> Result<Response<pb::BatchDeleteResponse>, Status> {
        self.router
            .unary(
                request,
                Operation::KvBatchDelete,
                |b| &b.keyvalue_batch,
                |kv, limits, req| async move {
                    check_keys(&limits, &req.keys)?;
                    Ok(pb::BatchDeleteResponse {
                        existed: kv.batch_delete(req.keys).await?,
                    })
                },
            )
            .await
    }
}

fn check_keys(limits: &crate::limits::Limits, keys: &[bytes::Bytes]) -> Result<(), BackendError> {
    limits.check_batch("keys", keys.len())?;
    for (i, key) in keys.iter().enumerate() {
        limits.check_key(&format!("keys[{i}]"), key)?;
    }
    Ok(())
}
