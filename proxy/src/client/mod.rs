//! [`PrismClient`]: a gRPC client implementing every interface trait, so code written
//! against the traits (the acceptance suites, the load generator) runs over the wire
//! unchanged. Errors come back as the [`BackendError`] the server raised.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use prism_proto::keyvalue::v1 as kv;
use prism_proto::meta::v1 as meta;
use prism_proto::pubsub::v1::{
    self as ps, pub_sub_basic_client::PubSubBasicClient, subscribe_response::Event as SubEvent,
};
use prism_proto::queue::v1 as q;
use prism_proto::timeseries::v1 as ts;
use tonic::Request;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};

use transport::Transport;

mod encoded;
mod reflection;
mod transport;

pub use encoded::MethodPath;

use crate::backends::{Backend, HealthCheck};
use crate::interfaces::{
    AggregateRow, Aggregation, Event, EventColumns, KeyValueBasic, KeyValueBatch, KeyValueScan, KeyValueTtl,
    PubSubBasic, Query, QueueBasic, ReceivedMessage, ScanPage, Subscription, TimeSeriesBasic, TtlState,
};
use crate::status::from_status;
use crate::{BackendError, BackendResult, Interface, NAMESPACE_HEADER, Operation, wire};

/// A connection to a Prism endpoint, bound to one namespace. Cheap to clone.
#[derive(Clone)]
pub struct PrismClient {
    transport: Transport,
    /// Scheme and authority put on every request (the direct transport needs them;
    /// tonic's channel adds its own).
    origin: Option<http::Uri>,
    namespace: AsciiMetadataValue,
    timeout: Option<Duration>,
    /// Extra metadata sent with every call (authorization, tenant headers, ...).
    extra: Vec<(tonic::metadata::AsciiMetadataKey, AsciiMetadataValue)>,
    /// The headers of every unary call, built once: building them per call cost the
    /// load generator about 5% of its request rate.
    unary_headers: http::HeaderMap,
}

/// What a namespace serves, as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceInfo {
    /// The namespace asked about.
    pub namespace: String,
    /// Its backend type (`memstore`, `redis`, ...).
    pub backend: String,
    /// The interfaces it serves.
    pub interfaces: Vec<Interface>,
}

/// How to check the server of an `https://` endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM certificates of the authority that signed the server's certificate; the
    /// system's roots when `None`.
    pub ca_pem: Option<Vec<u8>>,
    /// The name the certificate must carry, when it differs from the endpoint's host.
    pub server_name: Option<String>,
}

impl PrismClient {
    /// Connects to `endpoint` (`http://host:port`, or `https://` checked against the
    /// system's roots) for `namespace`.
    pub async fn connect(endpoint: &str, namespace: &str) -> BackendResult<PrismClient> {
        PrismClient::connect_with(endpoint, namespace, &ClientTls::default()).await
    }

    /// Like [`PrismClient::connect`], with `tls` used for an `https://` endpoint.
    pub async fn connect_with(endpoint: &str, namespace: &str, tls: &ClientTls) -> BackendResult<PrismClient> {
        let mut endpoint = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| BackendError::invalid("endpoint", format!("{endpoint:?} is not a URI: {e}")))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        if endpoint.uri().scheme_str() == Some("https") {
            crate::tls::ensure_crypto_provider();
            let mut config = tonic::transport::ClientTlsConfig::new();
            config = match &tls.ca_pem {
                Some(pem) => config.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
                None => config.with_native_roots(),
            };
            if let Some(name) = &tls.server_name {
                config = config.domain_name(name.clone());
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| BackendError::invalid("endpoint", format!("TLS settings: {e}")))?;
        }
        let channel = endpoint.connect().await.map_err(|e| {
            BackendError::Unavailable(format!(
                "cannot connect to {}: {}",
                endpoint.uri(),
                crate::error::chain(&e)
            ))
        })?;
        PrismClient::from_channel(channel, namespace)
    }

    /// One HTTP/2 connection to `endpoint` (`http://host:port`) driven directly with
    /// `h2`, each call in the caller's task (see [`Transport`]); no TLS, no reconnection.
    pub async fn connect_direct(endpoint: &str, namespace: &str) -> BackendResult<PrismClient> {
        let uri: http::Uri = endpoint
            .parse()
            .map_err(|e| BackendError::invalid("endpoint", format!("{endpoint:?} is not a URI: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(BackendError::invalid(
                "endpoint",
                "a direct connection is plain http://",
            ));
        }
        let transport = Transport::direct(&uri).await.map_err(|e| {
            BackendError::Unavailable(format!("cannot connect to {uri}: {}", crate::error::chain(e.as_ref())))
        })?;
        let mut client = PrismClient::from_transport(transport, namespace)?;
        client.origin = Some(uri);
        Ok(client)
    }

    /// Uses an existing channel (to share one HTTP/2 connection across namespaces).
    pub fn from_channel(channel: Channel, namespace: &str) -> BackendResult<PrismClient> {
        PrismClient::from_transport(Transport::Channel(channel), namespace)
    }

    fn from_transport(transport: Transport, namespace: &str) -> BackendResult<PrismClient> {
        let namespace = namespace
            .parse()
            .map_err(|_| BackendError::invalid("namespace", format!("{namespace:?} is not valid metadata")))?;
        Ok(PrismClient {
            transport,
            origin: None,
            namespace,
            timeout: None,
            extra: Vec::new(),
            unary_headers: http::HeaderMap::new(),
        }
        .with_unary_headers())
    }

    /// Rebuilds the unary calls' headers after the metadata or the deadline changed.
    fn with_unary_headers(mut self) -> PrismClient {
        self.unary_headers = encoded::headers(self.metadata(), self.timeout);
        self
    }

    /// Sets a deadline sent with every call (`grpc-timeout`).
    pub fn with_timeout(mut self, timeout: Duration) -> PrismClient {
        self.timeout = Some(timeout);
        self.with_unary_headers()
    }

    /// Adds metadata sent with every call; `key` must be a valid ASCII metadata key.
    pub fn with_metadata(mut self, key: &str, value: &str) -> BackendResult<PrismClient> {
        let k = key
            .parse()
            .map_err(|_| BackendError::invalid("metadata", format!("{key:?} is not a valid metadata key")))?;
        let v = value.parse().map_err(|_| {
            BackendError::invalid("metadata", format!("the value of {key:?} is not valid ASCII metadata"))
        })?;
        self.extra.push((k, v));
        Ok(self.with_unary_headers())
    }

    /// The transport, for raw generated clients in tests.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The namespace and the extra metadata, sent with every call.
    fn metadata(&self) -> tonic::metadata::MetadataMap {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert(NAMESPACE_HEADER, self.namespace.clone());
        for (key, value) in &self.extra {
            metadata.insert(key.clone(), value.clone());
        }
        metadata
    }

    /// What the namespace serves (`Meta/DescribeNamespace`).
    pub async fn describe(&self) -> BackendResult<NamespaceInfo> {
        let response: meta::DescribeNamespaceResponse = self
            .unary(Operation::MetaDescribe, meta::DescribeNamespaceRequest {}, None)
            .await?;
        Ok(NamespaceInfo {
            namespace: response.namespace,
            backend: response.backend,
            interfaces: response.interfaces.iter().filter_map(|i| Interface::parse(i)).collect(),
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl KeyValueBasic for PrismClient {
    async fn set(&self, key: Bytes, value: Bytes) -> BackendResult<()> {
        self.unary::<kv::SetResponse>(Operation::KvSet, kv::SetRequest { key, value }, None)
            .await
            .map(drop)
    }

    async fn get(&self, key: Bytes) -> BackendResult<Option<Bytes>> {
        let r: kv::GetResponse = self.unary(Operation::KvGet, kv::GetRequest { key }, None).await?;
        Ok(r.found.then_some(r.value))
    }

    async fn delete(&self, key: Bytes) -> BackendResult<bool> {
        let r: kv::DeleteResponse = self.unary(Operation::KvDelete, kv::DeleteRequest { key }, None).await?;
        Ok(r.existed)
    }

    async fn exists(&self, key: Bytes) -> BackendResult<bool> {
        let r: kv::ExistsResponse = self.unary(Operation::KvExists, kv::ExistsRequest { key }, None).await?;
        Ok(r.exists)
    }
}

#[async_trait]
impl KeyValueTtl for PrismClient {
    async fn set_with_ttl(&self, key: Bytes, value: Bytes, ttl: Duration) -> BackendResult<()> {
        let request = kv::SetWithTtlRequest {
            key,
            value,
            ttl_ms: millis(ttl),
        };
        self.unary::<kv::SetResponse>(Operation::KvSetWithTtl, request, None)
            .await
            .map(drop)
    }

    async fn expire(&self, key: Bytes, ttl: Duration) -> BackendResult<bool> {
        let request = kv::ExpireRequest {
            key,
            ttl_ms: millis(ttl),
        };
        let r: kv::ExpireResponse = self.unary(Operation::KvExpire, request, None).await?;
        Ok(r.applied)
    }

    async fn ttl(&self, key: Bytes) -> BackendResult<TtlState> {
        wire::ttl_from_proto(self.unary(Operation::KvTtl, kv::TtlRequest { key }, None).await?)
    }

    async fn persist(&self, key: Bytes) -> BackendResult<bool> {
        let r: kv::PersistResponse = self
            .unary(Operation::KvPersist, kv::PersistRequest { key }, None)
            .await?;
        Ok(r.applied)
    }
}

#[async_trait]
impl KeyValueScan for PrismClient {
    async fn scan(&self, prefix: Bytes, limit: u32, cursor: Option<Bytes>) -> BackendResult<ScanPage> {
        let request = kv::ScanRequest {
            prefix,
            limit,
            cursor: cursor.unwrap_or_default(),
        };
        let r: kv::ScanResponse = self.unary(Operation::KvScan, request, None).await?;
        Ok(ScanPage {
            keys: r.keys,
            next_cursor: (!r.next_cursor.is_empty()).then_some(r.next_cursor),
        })
    }

    async fn count(&self, prefix: Bytes) -> BackendResult<u64> {
        let r: kv::CountResponse = self
            .unary(Operation::KvCount, kv::CountRequest { prefix }, None)
            .await?;
        Ok(r.count)
    }
}

#[async_trait]
impl KeyValueBatch for PrismClient {
    async fn batch_set(&self, entries: Vec<(Bytes, Bytes)>) -> BackendResult<Vec<bool>> {
        let entries = entries
            .into_iter()
            .map(|(key, value)| kv::KeyValue { key, value })
            .collect();
        let r: kv::BatchSetResponse = self
            .unary(Operation::KvBatchSet, kv::BatchSetRequest { entries }, None)
            .await?;
        Ok(r.stored)
    }

    async fn batch_get(&self, keys: Vec<Bytes>) -> BackendResult<Vec<Option<Bytes>>> {
        let r: kv::BatchGetResponse = self
            .unary(Operation::KvBatchGet, kv::BatchGetRequest { keys }, None)
            .await?;
        Ok(r.results.into_iter().map(|g| g.found.then_some(g.value)).collect())
    }

    async fn batch_delete(&self, keys: Vec<Bytes>) -> BackendResult<Vec<bool>> {
        let r: kv::BatchDeleteResponse = self
            .unary(Operation::KvBatchDelete, kv::BatchDeleteRequest { keys }, None)
            .await?;
        Ok(r.existed)
    }
}

#[async_trait]
impl PubSubBasic for PrismClient {
    async fn publish(&self, topic: String, payload: Bytes) -> BackendResult<u64> {
        let r: ps::PublishResponse = self
            .unary(Operation::PubsubPublish, ps::PublishRequest { topic, payload }, None)
            .await?;
        Ok(r.delivered_to)
    }

    async fn subscribe(&self, topic: String) -> BackendResult<Subscription> {
        // No deadline on the stream itself: it lives until dropped.
        let mut request = Request::new(ps::SubscribeRequest { topic });
        *request.metadata_mut() = self.metadata();
        let mut client = match &self.origin {
            Some(origin) => PubSubBasicClient::with_origin(self.transport.clone(), origin.clone()),
            None => PubSubBasicClient::new(self.transport.clone()),
        };
        let mut stream = client
            .subscribe(request)
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        // The server's first message confirms the subscription is live.
        let id = match stream.message().await.map_err(|s| from_status(&s))? {
            Some(ps::SubscribeResponse {
                event: Some(SubEvent::Subscribed(s)),
            }) => s.subscription_id,
            other => {
                return Err(BackendError::Internal(format!(
                    "expected a `subscribed` confirmation first, got {other:?}"
                )));
            }
        };
        let messages = futures::stream::unfold(stream, |mut stream| async move {
            loop {
                return match stream.message().await {
                    Ok(Some(ps::SubscribeResponse {
                        event: Some(SubEvent::Message(m)),
                    })) => Some((Ok(wire::message_from_proto(m)), stream)),
                    Ok(Some(_)) => continue,
                    Ok(None) => None,
                    Err(status) => Some((Err(from_status(&status)), stream)),
                };
            }
        })
        .boxed();
        Ok(Subscription { id, messages })
    }

    async fn unsubscribe(&self, subscription_id: &str) -> BackendResult<bool> {
        let request = ps::UnsubscribeRequest {
            subscription_id: subscription_id.to_string(),
        };
        let r: ps::UnsubscribeResponse = self.unary(Operation::PubsubUnsubscribe, request, None).await?;
        Ok(r.existed)
    }
}

#[async_trait]
impl QueueBasic for PrismClient {
    async fn enqueue(&self, queue: String, payload: Bytes) -> BackendResult<String> {
        let r: q::EnqueueResponse = self
            .unary(Operation::QueueEnqueue, q::EnqueueRequest { queue, payload }, None)
            .await?;
        Ok(r.message_id)
    }

    async fn receive(
        &self,
        queue: String,
        max: u32,
        visibility: Duration,
        wait: Duration,
    ) -> BackendResult<Vec<ReceivedMessage>> {
        let request = q::ReceiveRequest {
            queue,
            max_messages: max,
            visibility_timeout_ms: millis(visibility),
            wait_ms: millis(wait),
        };
        // A long poll must not be cut off by the per-call deadline.
        let timeout = self.timeout.map(|t| t + wait);
        let r: q::ReceiveResponse = self.unary(Operation::QueueReceive, request, timeout).await?;
        Ok(r.messages.into_iter().map(wire::received_from_proto).collect())
    }

    async fn ack(&self, queue: String, receipt: String) -> BackendResult<bool> {
        let r: q::AckResponse = self
            .unary(Operation::QueueAck, q::AckRequest { queue, receipt }, None)
            .await?;
        Ok(r.acknowledged)
    }

    async fn nack(&self, queue: String, receipt: String) -> BackendResult<bool> {
        let r: q::NackResponse = self
            .unary(Operation::QueueNack, q::NackRequest { queue, receipt }, None)
            .await?;
        Ok(r.requeued)
    }
}

#[async_trait]
impl TimeSeriesBasic for PrismClient {
    async fn append(&self, stream: String, events: Vec<Event>) -> BackendResult<u64> {
        let events = events.into_iter().map(wire::event_to_proto).collect();
        let r: ts::AppendResponse = self
            .unary(Operation::TsAppend, ts::AppendRequest { stream, events }, None)
            .await?;
        Ok(r.appended)
    }

    async fn append_columns(&self, stream: String, columns: EventColumns) -> BackendResult<u64> {
        let request = wire::columns_to_proto(stream, columns);
        let r: ts::AppendResponse = self.unary(Operation::TsAppendColumns, request, None).await?;
        Ok(r.appended)
    }

    async fn query(&self, stream: String, query: Query) -> BackendResult<Vec<Event>> {
        let r: ts::QueryResponse = self
            .unary(Operation::TsQuery, wire::query_to_proto(stream, query), None)
            .await?;
        Ok(r.events.into_iter().map(wire::event_from_proto).collect())
    }

    async fn aggregate(&self, stream: String, aggregation: Aggregation) -> BackendResult<Vec<AggregateRow>> {
        let request = wire::aggregation_to_proto(stream, aggregation);
        let r: ts::AggregateResponse = self.unary(Operation::TsAggregate, request, None).await?;
        Ok(r.rows.into_iter().map(wire::row_from_proto).collect())
    }
}

impl PrismClient {
    /// This client as a [`Backend`] serving `interfaces`, so code written against a
    /// backend (the acceptance suites) can run over the wire unchanged.
    pub fn backend(self, interfaces: &[Interface]) -> Backend {
        let c = Arc::new(self);
        let has = |i| interfaces.contains(&i);
        Backend {
            kind: "grpc",
            keyvalue_basic: has(Interface::KeyvalueBasic).then(|| c.clone() as Arc<dyn KeyValueBasic>),
            keyvalue_ttl: has(Interface::KeyvalueTtl).then(|| c.clone() as Arc<dyn KeyValueTtl>),
            keyvalue_scan: has(Interface::KeyvalueScan).then(|| c.clone() as Arc<dyn KeyValueScan>),
            keyvalue_batch: has(Interface::KeyvalueBatch).then(|| c.clone() as Arc<dyn KeyValueBatch>),
            pubsub_basic: has(Interface::PubsubBasic).then(|| c.clone() as Arc<dyn PubSubBasic>),
            queue_basic: has(Interface::QueueBasic).then(|| c.clone() as Arc<dyn QueueBasic>),
            timeseries_basic: has(Interface::TimeseriesBasic).then(|| c.clone() as Arc<dyn TimeSeriesBasic>),
            health: c,
        }
    }
}

#[async_trait]
impl HealthCheck for PrismClient {
    async fn check(&self) -> BackendResult<()> {
        self.describe().await.map(|_| ())
    }
}
