//! [`PrismClient`]: a gRPC client implementing every interface trait, so code written
//! against the traits (the acceptance suites, the load generator) runs over the wire
//! unchanged. Errors come back as the [`BackendError`] the server raised.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use prism_proto::keyvalue::v1::{
    self as kv, key_value_basic_client::KeyValueBasicClient, key_value_batch_client::KeyValueBatchClient,
    key_value_scan_client::KeyValueScanClient, key_value_ttl_client::KeyValueTtlClient,
};
use prism_proto::meta::v1::{self as meta, meta_client::MetaClient};
use prism_proto::pubsub::v1::{
    self as ps, pub_sub_basic_client::PubSubBasicClient, subscribe_response::Event as SubEvent,
};
use prism_proto::queue::v1::{self as q, queue_basic_client::QueueBasicClient};
use prism_proto::timeseries::v1::{self as ts, time_series_basic_client::TimeSeriesBasicClient};
use tonic::Request;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};

use transport::Transport;

mod transport;

use crate::backends::{Backend, HealthCheck};
use crate::interfaces::{
    AggregateRow, Aggregation, Event, KeyValueBasic, KeyValueBatch, KeyValueScan, KeyValueTtl, PubSubBasic, Query,
    QueueBasic, ReceivedMessage, ScanPage, Subscription, TimeSeriesBasic, TtlState,
};
use crate::status::from_status;
use crate::{BackendError, BackendResult, Interface, NAMESPACE_HEADER, wire};

/// A connection to a Prism endpoint, bound to one namespace. Cheap to clone.
#[derive(Clone)]
pub struct PrismClient {
    transport: Transport,
    /// Scheme and authority put on every request (the direct transport needs them;
    /// tonic's channel adds its own).
    origin: Option<http::Uri>,
    namespace: AsciiMetadataValue,
    timeout: Option<Duration>,
    /// `timeout` encoded once as a `grpc-timeout` value: formatting it per call cost the
    /// load generator about 5% of its request rate.
    timeout_header: Option<AsciiMetadataValue>,
    /// Extra metadata sent with every call (authorization, tenant headers, ...).
    extra: Vec<(tonic::metadata::AsciiMetadataKey, AsciiMetadataValue)>,
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
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| BackendError::Unavailable(format!("cannot connect to {}: {}", endpoint.uri(), chain(&e))))?;
        PrismClient::from_channel(channel, namespace)
    }

    /// One HTTP/2 connection to `endpoint` (`http://host:port`) driven directly, without
    /// tonic's request buffer (see [`Transport`]); no TLS, no reconnection.
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
        let transport = Transport::direct(&uri)
            .await
            .map_err(|e| BackendError::Unavailable(format!("cannot connect to {uri}: {}", chain(e.as_ref()))))?;
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
            timeout_header: None,
            extra: Vec::new(),
        })
    }

    /// Sets a deadline sent with every call (`grpc-timeout`).
    pub fn with_timeout(mut self, timeout: Duration) -> PrismClient {
        self.timeout = Some(timeout);
        self.timeout_header = grpc_timeout(timeout);
        self
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
        Ok(self)
    }

    /// The transport, for raw generated clients in tests.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// A generated client over this client's transport and origin.
    fn client<C>(&self, new: fn(Transport) -> C, with_origin: fn(Transport, http::Uri) -> C) -> C {
        match &self.origin {
            Some(origin) => with_origin(self.transport.clone(), origin.clone()),
            None => new(self.transport.clone()),
        }
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.metadata_mut().insert(NAMESPACE_HEADER, self.namespace.clone());
        if let Some(value) = &self.timeout_header {
            request.metadata_mut().insert("grpc-timeout", value.clone());
        }
        for (key, value) in &self.extra {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        request
    }

    /// What the namespace serves (`Meta/DescribeNamespace`).
    pub async fn describe(&self) -> BackendResult<NamespaceInfo> {
        let response = self
            .client(MetaClient::new, MetaClient::with_origin)
            .describe_namespace(self.request(meta::DescribeNamespaceRequest {}))
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        Ok(NamespaceInfo {
            namespace: response.namespace,
            backend: response.backend,
            interfaces: response.interfaces.iter().filter_map(|i| Interface::parse(i)).collect(),
        })
    }

    fn kv_basic(&self) -> KeyValueBasicClient<Transport> {
        self.client(KeyValueBasicClient::new, KeyValueBasicClient::with_origin)
    }
    fn kv_ttl(&self) -> KeyValueTtlClient<Transport> {
        self.client(KeyValueTtlClient::new, KeyValueTtlClient::with_origin)
    }
    fn kv_scan(&self) -> KeyValueScanClient<Transport> {
        self.client(KeyValueScanClient::new, KeyValueScanClient::with_origin)
    }
    fn kv_batch(&self) -> KeyValueBatchClient<Transport> {
        self.client(KeyValueBatchClient::new, KeyValueBatchClient::with_origin)
    }
    fn pubsub(&self) -> PubSubBasicClient<Transport> {
        self.client(PubSubBasicClient::new, PubSubBasicClient::with_origin)
    }
    fn queue(&self) -> QueueBasicClient<Transport> {
        self.client(QueueBasicClient::new, QueueBasicClient::with_origin)
    }
    fn series(&self) -> TimeSeriesBasicClient<Transport> {
        self.client(TimeSeriesBasicClient::new, TimeSeriesBasicClient::with_origin)
    }
}

/// A `grpc-timeout` value (at most 8 digits and a unit), in the finest unit that fits.
fn grpc_timeout(timeout: Duration) -> Option<AsciiMetadataValue> {
    let micros = timeout.as_micros();
    let text = if micros < 100_000_000 {
        format!("{micros}u")
    } else if timeout.as_millis() < 100_000_000 {
        format!("{}m", timeout.as_millis())
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    };
    text.parse().ok()
}

/// Unwraps a unary response into its message or the server's error.
fn answer<T>(result: Result<tonic::Response<T>, tonic::Status>) -> BackendResult<T> {
    result.map(tonic::Response::into_inner).map_err(|s| from_status(&s))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl KeyValueBasic for PrismClient {
    async fn set(&self, key: Bytes, value: Bytes) -> BackendResult<()> {
        answer(self.kv_basic().set(self.request(kv::SetRequest { key, value })).await).map(|_| ())
    }

    async fn get(&self, key: Bytes) -> BackendResult<Option<Bytes>> {
        let r = answer(self.kv_basic().get(self.request(kv::GetRequest { key })).await)?;
        Ok(r.found.then_some(r.value))
    }

    async fn delete(&self, key: Bytes) -> BackendResult<bool> {
        answer(self.kv_basic().delete(self.request(kv::DeleteRequest { key })).await).map(|r| r.existed)
    }

    async fn exists(&self, key: Bytes) -> BackendResult<bool> {
        answer(self.kv_basic().exists(self.request(kv::ExistsRequest { key })).await).map(|r| r.exists)
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
        answer(self.kv_ttl().set_with_ttl(self.request(request)).await).map(|_| ())
    }

    async fn expire(&self, key: Bytes, ttl: Duration) -> BackendResult<bool> {
        let request = kv::ExpireRequest {
            key,
            ttl_ms: millis(ttl),
        };
        answer(self.kv_ttl().expire(self.request(request)).await).map(|r| r.applied)
    }

    async fn ttl(&self, key: Bytes) -> BackendResult<TtlState> {
        wire::ttl_from_proto(answer(self.kv_ttl().ttl(self.request(kv::TtlRequest { key })).await)?)
    }

    async fn persist(&self, key: Bytes) -> BackendResult<bool> {
        answer(self.kv_ttl().persist(self.request(kv::PersistRequest { key })).await).map(|r| r.applied)
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
        let r = answer(self.kv_scan().scan(self.request(request)).await)?;
        Ok(ScanPage {
            keys: r.keys,
            next_cursor: (!r.next_cursor.is_empty()).then_some(r.next_cursor),
        })
    }

    async fn count(&self, prefix: Bytes) -> BackendResult<u64> {
        answer(self.kv_scan().count(self.request(kv::CountRequest { prefix })).await).map(|r| r.count)
    }
}

#[async_trait]
impl KeyValueBatch for PrismClient {
    async fn batch_set(&self, entries: Vec<(Bytes, Bytes)>) -> BackendResult<Vec<bool>> {
        let entries = entries
            .into_iter()
            .map(|(key, value)| kv::KeyValue { key, value })
            .collect();
        answer(
            self.kv_batch()
                .batch_set(self.request(kv::BatchSetRequest { entries }))
                .await,
        )
        .map(|r| r.stored)
    }

    async fn batch_get(&self, keys: Vec<Bytes>) -> BackendResult<Vec<Option<Bytes>>> {
        let r = answer(
            self.kv_batch()
                .batch_get(self.request(kv::BatchGetRequest { keys }))
                .await,
        )?;
        Ok(r.results.into_iter().map(|g| g.found.then_some(g.value)).collect())
    }

    async fn batch_delete(&self, keys: Vec<Bytes>) -> BackendResult<Vec<bool>> {
        answer(
            self.kv_batch()
                .batch_delete(self.request(kv::BatchDeleteRequest { keys }))
                .await,
        )
        .map(|r| r.existed)
    }
}

#[async_trait]
impl PubSubBasic for PrismClient {
    async fn publish(&self, topic: String, payload: Bytes) -> BackendResult<u64> {
        answer(
            self.pubsub()
                .publish(self.request(ps::PublishRequest { topic, payload }))
                .await,
        )
        .map(|r| r.delivered_to)
    }

    async fn subscribe(&self, topic: String) -> BackendResult<Subscription> {
        // No deadline on the stream itself: it lives until dropped.
        let mut request = Request::new(ps::SubscribeRequest { topic });
        request.metadata_mut().insert(NAMESPACE_HEADER, self.namespace.clone());
        for (key, value) in &self.extra {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        let mut stream = answer(self.pubsub().subscribe(request).await)?;
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
        answer(self.pubsub().unsubscribe(self.request(request)).await).map(|r| r.existed)
    }
}

#[async_trait]
impl QueueBasic for PrismClient {
    async fn enqueue(&self, queue: String, payload: Bytes) -> BackendResult<String> {
        answer(
            self.queue()
                .enqueue(self.request(q::EnqueueRequest { queue, payload }))
                .await,
        )
        .map(|r| r.message_id)
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
        let mut request = self.request(request);
        if let Some(timeout) = self.timeout {
            // A long poll must not be cut off by the per-call deadline.
            request.set_timeout(timeout + wait);
        }
        let r = answer(self.queue().receive(request).await)?;
        Ok(r.messages.into_iter().map(wire::received_from_proto).collect())
    }

    async fn ack(&self, queue: String, receipt: String) -> BackendResult<bool> {
        answer(self.queue().ack(self.request(q::AckRequest { queue, receipt })).await).map(|r| r.acknowledged)
    }

    async fn nack(&self, queue: String, receipt: String) -> BackendResult<bool> {
        answer(self.queue().nack(self.request(q::NackRequest { queue, receipt })).await).map(|r| r.requeued)
    }
}

#[async_trait]
impl TimeSeriesBasic for PrismClient {
    async fn append(&self, stream: String, events: Vec<Event>) -> BackendResult<u64> {
        let events = events.into_iter().map(wire::event_to_proto).collect();
        answer(
            self.series()
                .append(self.request(ts::AppendRequest { stream, events }))
                .await,
        )
        .map(|r| r.appended)
    }

    async fn query(&self, stream: String, query: Query) -> BackendResult<Vec<Event>> {
        let r = answer(
            self.series()
                .query(self.request(wire::query_to_proto(stream, query)))
                .await,
        )?;
        Ok(r.events.into_iter().map(wire::event_from_proto).collect())
    }

    async fn aggregate(&self, stream: String, aggregation: Aggregation) -> BackendResult<Vec<AggregateRow>> {
        let request = wire::aggregation_to_proto(stream, aggregation);
        let r = answer(self.series().aggregate(self.request(request)).await)?;
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

/// An error and its causes, `outer: inner: ...` (tonic's transport errors say little
/// without their sources, e.g. which certificate check failed).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
