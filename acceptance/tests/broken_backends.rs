//! The suites must catch real violations: run them against deliberately broken in-test
//! backends (memstore with one behaviour sabotaged) and check that exactly the cases
//! covering that behaviour fail, and every other case still passes. Among them, an `ack`
//! that takes a stale receipt: the mutation of the PostgreSQL driver that once passed every
//! queue case directly and through the proxy.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use acceptance::suites::{self, Subject};
use async_trait::async_trait;
use bytes::Bytes;
use prism_proxy::BackendResult;
use prism_proxy::backends::Backend;
use prism_proxy::backends::memstore::{KvStore, MemStore, PubSubHub, Queues, SeriesStore};
use prism_proxy::interfaces::*;

/// `delete` answers as if it deleted, but keeps the key.
struct DeleteDoesNotDelete(Arc<KvStore>);

#[async_trait]
impl KeyValueBasic for DeleteDoesNotDelete {
    async fn set(&self, key: Bytes, value: Bytes) -> BackendResult<()> {
        self.0.set(key, value).await
    }
    async fn get(&self, key: Bytes) -> BackendResult<Option<Bytes>> {
        self.0.get(key).await
    }
    async fn delete(&self, key: Bytes) -> BackendResult<bool> {
        self.0.exists(key).await
    }
    async fn exists(&self, key: Bytes) -> BackendResult<bool> {
        self.0.exists(key).await
    }
}

/// TTLs are accepted and ignored: keys never expire.
struct TtlIgnored(Arc<KvStore>);

#[async_trait]
impl KeyValueTtl for TtlIgnored {
    async fn set_with_ttl(&self, key: Bytes, value: Bytes, _: Duration) -> BackendResult<()> {
        self.0.set(key, value).await
    }
    async fn expire(&self, key: Bytes, _: Duration) -> BackendResult<bool> {
        self.0.exists(key).await
    }
    async fn ttl(&self, key: Bytes) -> BackendResult<TtlState> {
        self.0.ttl(key).await
    }
    async fn persist(&self, key: Bytes) -> BackendResult<bool> {
        self.0.persist(key).await
    }
}

/// Each page after the first starts again with the previous page's last key.
struct ScanRepeatsAKey(Arc<KvStore>);

#[async_trait]
impl KeyValueScan for ScanRepeatsAKey {
    async fn scan(&self, prefix: Bytes, limit: u32, cursor: Option<Bytes>) -> BackendResult<ScanPage> {
        let mut page = self.0.scan(prefix, limit, cursor.clone()).await?;
        if let Some(last) = cursor {
            page.keys.insert(0, last);
            page.keys.truncate(limit as usize);
            if page.next_cursor.is_some() {
                page.next_cursor = page.keys.last().cloned();
            }
        }
        Ok(page)
    }
    async fn count(&self, prefix: Bytes) -> BackendResult<u64> {
        self.0.count(prefix).await
    }
}

/// Received messages are dropped at once, acked or not: at-most-once in disguise.
struct QueueDropsUnacked(Arc<Queues>);

#[async_trait]
impl QueueBasic for QueueDropsUnacked {
    async fn enqueue(&self, queue: String, payload: Bytes) -> BackendResult<String> {
        self.0.enqueue(queue, payload).await
    }
    async fn receive(
        &self,
        queue: String,
        max: u32,
        vis: Duration,
        wait: Duration,
    ) -> BackendResult<Vec<ReceivedMessage>> {
        let got = self.0.receive(queue.clone(), max, vis, wait).await?;
        for m in &got {
            self.0.ack(queue.clone(), m.receipt.clone()).await?;
        }
        Ok(got)
    }
    async fn ack(&self, _: String, _: String) -> BackendResult<bool> {
        Ok(true)
    }
    async fn nack(&self, _: String, _: String) -> BackendResult<bool> {
        Ok(true)
    }
}

/// `ack` takes any receipt the message was ever given, as the current one: the
/// mutation of the PostgreSQL driver that once passed every queue case.
struct AckTakesAnyReceipt {
    inner: Arc<Queues>,
    /// receipt -> message id, for every receipt handed out
    issued: parking_lot::Mutex<std::collections::HashMap<String, String>>,
    /// message id -> its latest receipt
    latest: parking_lot::Mutex<std::collections::HashMap<String, String>>,
}

#[async_trait]
impl QueueBasic for AckTakesAnyReceipt {
    async fn enqueue(&self, queue: String, payload: Bytes) -> BackendResult<String> {
        self.inner.enqueue(queue, payload).await
    }
    async fn receive(
        &self,
        queue: String,
        max: u32,
        vis: Duration,
        wait: Duration,
    ) -> BackendResult<Vec<ReceivedMessage>> {
        let got = self.inner.receive(queue, max, vis, wait).await?;
        for m in &got {
            self.issued.lock().insert(m.receipt.clone(), m.message_id.clone());
            self.latest.lock().insert(m.message_id.clone(), m.receipt.clone());
        }
        Ok(got)
    }
    async fn ack(&self, queue: String, receipt: String) -> BackendResult<bool> {
        let current = self
            .issued
            .lock()
            .get(&receipt)
            .and_then(|id| self.latest.lock().get(id).cloned());
        self.inner.ack(queue, current.unwrap_or(receipt)).await
    }
    async fn nack(&self, queue: String, receipt: String) -> BackendResult<bool> {
        self.inner.nack(queue, receipt).await
    }
}

/// A batch naming one key twice keeps the first value, not the last (an insert that
/// skips conflicts within the batch). Only the batch model repeats keys in a batch.
struct BatchFirstValueWins(Arc<KvStore>);

#[async_trait]
impl KeyValueBatch for BatchFirstValueWins {
    async fn batch_set(&self, entries: Vec<(Bytes, Bytes)>) -> BackendResult<Vec<bool>> {
        let n = entries.len();
        let mut seen = BTreeSet::new();
        let first: Vec<(Bytes, Bytes)> = entries.into_iter().filter(|(k, _)| seen.insert(k.clone())).collect();
        self.0.batch_set(first).await?;
        Ok(vec![true; n])
    }
    async fn batch_get(&self, keys: Vec<Bytes>) -> BackendResult<Vec<Option<Bytes>>> {
        self.0.batch_get(keys).await
    }
    async fn batch_delete(&self, keys: Vec<Bytes>) -> BackendResult<Vec<bool>> {
        self.0.batch_delete(keys).await
    }
}

/// Every third publish is handed to the hub a little later, after `publish` returned
/// (a driver publishing from a pool of connections): one publisher's messages overtake
/// each other.
struct PublishesOvertake {
    inner: Arc<PubSubHub>,
    count: std::sync::atomic::AtomicU64,
}

#[async_trait]
impl PubSubBasic for PublishesOvertake {
    async fn publish(&self, topic: String, payload: Bytes) -> BackendResult<u64> {
        let n = self.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let inner = self.inner.clone();
        if n % 3 == 2 {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = inner.publish(topic, payload).await;
            });
            return Ok(0);
        }
        inner.publish(topic, payload).await
    }
    async fn subscribe(&self, topic: String) -> BackendResult<Subscription> {
        self.inner.subscribe(topic).await
    }
    async fn unsubscribe(&self, id: &str) -> BackendResult<bool> {
        self.inner.unsubscribe(id).await
    }
}

/// Events with the same time come back in reverse append order. The model makes such
/// ties often, and the columns examples append two events at one time on purpose.
struct TiesReversed(Arc<SeriesStore>);

#[async_trait]
impl TimeSeriesBasic for TiesReversed {
    async fn append(&self, stream: String, events: Vec<Event>) -> BackendResult<u64> {
        self.0.append(stream, events).await
    }
    async fn query(&self, stream: String, query: Query) -> BackendResult<Vec<Event>> {
        let mut events = self
            .0
            .query(
                stream,
                Query {
                    limit: 0,
                    ..query.clone()
                },
            )
            .await?;
        events.reverse();
        events.sort_by_key(|e| e.timestamp_ms);
        events.truncate(query.max_events());
        Ok(events)
    }
    async fn aggregate(&self, stream: String, aggregation: Aggregation) -> BackendResult<Vec<AggregateRow>> {
        self.0.aggregate(stream, aggregation).await
    }
}

/// Key 3 never reads back: a bug the committed histories do not cover, so only the
/// random sequences find it.
struct ForgetsKeyThree {
    inner: Arc<KvStore>,
    prefix: String,
}

#[async_trait]
impl KeyValueBasic for ForgetsKeyThree {
    async fn set(&self, key: Bytes, value: Bytes) -> BackendResult<()> {
        self.inner.set(key, value).await
    }
    async fn get(&self, key: Bytes) -> BackendResult<Option<Bytes>> {
        if key.ends_with(&[3]) && key.starts_with(self.prefix.as_bytes()) {
            return Ok(None);
        }
        self.inner.get(key).await
    }
    async fn delete(&self, key: Bytes) -> BackendResult<bool> {
        self.inner.delete(key).await
    }
    async fn exists(&self, key: Bytes) -> BackendResult<bool> {
        self.inner.exists(key).await
    }
}

/// A memstore backend with one part replaced by `sabotage`.
fn broken(sabotage: fn(&MemStore, &mut Backend)) -> Backend {
    let store = MemStore::new();
    let mut backend = store.backend();
    sabotage(&store, &mut backend);
    backend
}

/// Runs every case (all capabilities granted) and returns the names of those that fail.
async fn failing_cases(sabotage: fn(&MemStore, &mut Backend)) -> BTreeSet<String> {
    let mut failing = BTreeSet::new();
    for (n, case) in suites::all().into_iter().enumerate() {
        if case.needs.contains(&acceptance::Capability::EnforcesLimits) {
            continue; // memstore alone enforces no size limits: not what is under test here
        }
        let subject = Subject {
            backend: broken(sabotage),
            prefix: format!("c{n}:"),
            history: None,
            capabilities: acceptance::Capability::ALL.to_vec(),
        };
        if let Err(e) = (case.run)(subject).await {
            eprintln!(
                "{}::{} failed: {}",
                case.interface,
                case.name,
                format!("{e:#}").lines().next().unwrap_or("")
            );
            failing.insert(format!("{}::{}", case.interface, case.name));
        }
    }
    failing
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Every case in `must` failed, and nothing else but cases in `may`: model checks of other
/// interfaces whose random sequences use the broken operation only now and then.
fn assert_caught(failing: BTreeSet<String>, must: &[&str], may: &[&str]) {
    let (must, may) = (set(must), set(may));
    let missed: Vec<&String> = must.difference(&failing).collect();
    let stray: Vec<&String> = failing
        .iter()
        .filter(|c| !must.contains(*c) && !may.contains(*c))
        .collect();
    assert!(
        missed.is_empty() && stray.is_empty(),
        "cases that should have failed but passed: {missed:?}; cases that failed but should not: {stray:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intact_memstore_fails_nothing() {
    assert_caught(failing_cases(|_, _| {}).await, &[], &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_that_does_not_delete_is_caught() {
    let failing =
        failing_cases(|store, b| b.keyvalue_basic = Some(Arc::new(DeleteDoesNotDelete(store.kv.clone())))).await;
    assert_caught(
        failing,
        &[
            "keyvalue_basic::delete_reports_whether_key_existed",
            "keyvalue_basic::model_random_sequences",
            "keyvalue_scan::count_matches_scan",
        ],
        &[
            "keyvalue_ttl::model_random_sequences",
            "keyvalue_scan::model_random_sequences",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_ttl_is_caught() {
    let failing = failing_cases(|store, b| b.keyvalue_ttl = Some(Arc::new(TtlIgnored(store.kv.clone())))).await;
    assert_caught(
        failing,
        &[
            "keyvalue_ttl::expired_key_is_invisible_to_get_and_exists",
            "keyvalue_ttl::expired_key_is_invisible_to_scan",
            "keyvalue_ttl::persist_removes_expiry",
            "keyvalue_ttl::ttl_reports_remaining_time",
            "keyvalue_ttl::model_random_sequences",
        ],
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_that_repeats_a_key_is_caught() {
    let failing = failing_cases(|store, b| b.keyvalue_scan = Some(Arc::new(ScanRepeatsAKey(store.kv.clone())))).await;
    assert_caught(
        failing,
        &[
            "keyvalue_scan::count_matches_scan",
            "keyvalue_scan::keys_present_throughout_survive_writes_between_pages",
            "keyvalue_scan::pages_return_every_key_exactly_once",
            "keyvalue_scan::model_random_sequences",
        ],
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_that_drops_unacked_messages_is_caught() {
    let failing =
        failing_cases(|store, b| b.queue_basic = Some(Arc::new(QueueDropsUnacked(store.queues.clone())))).await;
    assert_caught(
        failing,
        &[
            "queue_basic::unacked_message_comes_back_after_visibility_timeout",
            "queue_basic::stale_receipt_is_refused_and_the_message_stays",
            "queue_basic::ack_after_visibility_timeout_is_refused",
            "queue_basic::nack_redelivers",
            "queue_basic::consumer_that_dies_loses_nothing",
            "queue_basic::queues_keep_their_own_visibility",
            "queue_basic::delivery_count_increments",
            "queue_basic::model_random_sequences",
        ],
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_that_takes_a_stale_receipt_is_caught() {
    let failing = failing_cases(|store, b| {
        b.queue_basic = Some(Arc::new(AckTakesAnyReceipt {
            inner: store.queues.clone(),
            issued: Default::default(),
            latest: Default::default(),
        }))
    })
    .await;
    assert_caught(
        failing,
        &["queue_basic::stale_receipt_is_refused_and_the_message_stays"],
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_where_the_first_of_two_values_wins_is_caught() {
    let failing =
        failing_cases(|store, b| b.keyvalue_batch = Some(Arc::new(BatchFirstValueWins(store.kv.clone())))).await;
    assert_caught(failing, &["keyvalue_batch::model_random_sequences"], &[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_that_overtake_each_other_are_caught() {
    let failing = failing_cases(|store, b| {
        b.pubsub_basic = Some(Arc::new(PublishesOvertake {
            inner: store.pubsub.clone(),
            count: Default::default(),
        }))
    })
    .await;
    assert_caught(
        failing,
        &[
            "pubsub_basic::order_per_publisher_is_kept",
            "pubsub_basic::model_random_sequences",
        ],
        &[],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ties_in_reverse_append_order_are_caught() {
    let failing =
        failing_cases(|store, b| b.timeseries_basic = Some(Arc::new(TiesReversed(store.series.clone())))).await;
    assert_caught(
        failing,
        &[
            "timeseries_basic::model_random_sequences",
            "timeseries_basic::columns_append_the_same_events",
            "timeseries_basic::columns_and_events_share_one_append_order",
        ],
        &[],
    );
}

/// A model check's failure is written as a history file; replayed against the same
/// broken backend it diverges at the same step, against an intact one not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_history_replays_to_the_same_divergence() {
    use acceptance::suites::model::{self, History};
    let dir = tempfile::tempdir().unwrap();
    let forgetful = || {
        let store = MemStore::new();
        let mut backend = store.backend();
        backend.keyvalue_basic = Some(Arc::new(ForgetsKeyThree {
            inner: store.kv.clone(),
            prefix: "replay:".into(),
        }));
        backend
    };
    let file = dir.path().join("histories").join("forgetful.keyvalue.json");
    let subject = |backend, history| Subject {
        backend,
        prefix: "replay:".into(),
        history,
        capabilities: acceptance::Capability::ALL.to_vec(),
    };
    let failure = model::keyvalue(subject(forgetful(), Some(file.clone())))
        .await
        .expect_err("the random sequences find key 3");
    let message = format!("{failure:#}");
    assert!(
        message.contains(&file.display().to_string()),
        "the path is printed: {message}"
    );

    let history = History::read(&file).unwrap();
    assert_eq!(history.model, "keyvalue");
    assert_eq!(history.seed.as_deref().map(str::len), Some(64), "{history:?}");
    let ops = history.ops.as_array().unwrap();
    // Shrunk: a set of key 3 and the get that misses it.
    assert_eq!(ops.len(), 2, "{ops:?}");
    let recorded = history.divergence.clone().unwrap();

    let again = model::replay(subject(forgetful(), None), &history)
        .await
        .expect_err("the same backend diverges again");
    assert_eq!(format!("{again:#}"), recorded, "the same divergence");
    model::replay(subject(MemStore::new().backend(), None), &history)
        .await
        .expect("an intact memstore does not diverge");
}
