//! Model-based checks: random operation sequences run against the subject and a simple
//! reference model side by side. proptest shrinks a failure to the minimal sequence,
//! which the case's error prints and, when the subject names a history file, writes as a
//! [`History`] (the seed of the run and the shrunk operations) that [`replay`] runs again
//! to its first divergence (`prism-conformance --replay FILE`). The histories committed in
//! `acceptance/regressions.json` run first on every run, as proptest's persistence does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use futures::future::BoxFuture;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{CaseResult, Subject};

/// Sequences per run: enough to find ordering bugs, few enough to run through a proxy.
const SEQUENCES: u32 = 32;

/// An operation history of a model check: one that failed (written beside the report),
/// or one committed to run first on every run (`acceptance/regressions.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    /// The model it runs against: `keyvalue` or `queue`.
    pub model: String,
    /// The trial it came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial: Option<String>,
    /// The seed of the random run that found it (hex, for `PRISM_ACCEPT_MODEL_SEED`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// The divergence from the model when it was recorded, or why it is committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub divergence: Option<String>,
    /// The operations, as the model's operation type writes them.
    pub ops: serde_json::Value,
}

impl History {
    /// Reads a history file and checks that it names a model and its operations.
    pub fn read(path: &Path) -> anyhow::Result<History> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let history: History =
            serde_json::from_str(&text).with_context(|| format!("{}: not a model history", path.display()))?;
        let parsed = match history.model.as_str() {
            "keyvalue" => ops::<KvOp>(&history).map(drop),
            "queue" => ops::<QueueOp>(&history).map(drop),
            other => Err(anyhow::anyhow!("unknown model {other:?}: expected keyvalue or queue")),
        };
        parsed.with_context(|| path.display().to_string())?;
        Ok(history)
    }
}

fn ops<Op: DeserializeOwned>(history: &History) -> anyhow::Result<Vec<Op>> {
    serde_json::from_value(history.ops.clone()).context("the history's ops")
}

/// The committed histories, run first.
fn regressions() -> anyhow::Result<Vec<History>> {
    serde_json::from_str(include_str!("../../regressions.json")).context("acceptance/regressions.json")
}

/// The seed of this run's random sequences: `PRISM_ACCEPT_MODEL_SEED` (64 hex digits)
/// to repeat a run, else a new one.
fn seed() -> anyhow::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    match std::env::var("PRISM_ACCEPT_MODEL_SEED") {
        Ok(hex) => {
            let bytes: Option<Vec<u8>> = (0..hex.len())
                .step_by(2)
                .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
                .collect();
            match bytes {
                Some(bytes) if bytes.len() == 32 => seed.copy_from_slice(&bytes),
                _ => anyhow::bail!("PRISM_ACCEPT_MODEL_SEED={hex:?}: expected 64 hex digits"),
            }
        }
        Err(_) => seed = rand::random(),
    }
    Ok(seed)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `check` on the committed histories of `model`, then on random sequences from
/// `strategy`, each with a fresh sub-prefix. A failure is written as a [`History`] to
/// the subject's history file, when it names one.
async fn run_model<Op, S>(
    s: Subject,
    model: &'static str,
    strategy: S,
    check: fn(Subject, Vec<Op>) -> BoxFuture<'static, CaseResult>,
) -> CaseResult
where
    Op: Debug + Clone + Send + Serialize + DeserializeOwned + 'static,
    S: Strategy<Value = Vec<Op>> + Send + 'static,
{
    let sequence = AtomicU64::new(0);
    let fresh = |s: &Subject| Subject {
        prefix: format!("{}m{}:", s.prefix, sequence.fetch_add(1, Ordering::Relaxed)),
        ..s.clone()
    };
    for committed in regressions()?.into_iter().filter(|h| h.model == model) {
        let ops: Vec<Op> = ops(&committed).context("acceptance/regressions.json")?;
        if let Err(e) = check(fresh(&s), ops).await {
            let why = committed.divergence.as_deref().unwrap_or("a committed regression");
            let failed = History {
                seed: None,
                divergence: Some(format!("{e:#}")),
                ..committed.clone()
            };
            anyhow::bail!("committed regression ({why}) fails again: {e:#}{}", record(&s, failed));
        }
    }
    let seed = seed()?;
    let handle = tokio::runtime::Handle::current();
    let outcome = tokio::task::spawn_blocking({
        let s = s.clone();
        move || {
            let config = Config {
                cases: SEQUENCES,
                failure_persistence: None,
                ..Config::default()
            };
            let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
            let sequence = AtomicU64::new(0);
            runner.run(&strategy, |ops| {
                let sub = Subject {
                    prefix: format!("{}r{}:", s.prefix, sequence.fetch_add(1, Ordering::Relaxed)),
                    ..s.clone()
                };
                handle
                    .block_on(check(sub, ops))
                    .map_err(|e| TestCaseError::fail(format!("{e:#}")))
            })
        }
    })
    .await?;
    match outcome {
        Ok(()) => Ok(()),
        Err(TestError::Fail(reason, ops)) => {
            let history = History {
                model: model.to_string(),
                trial: None,
                seed: Some(hex(&seed)),
                divergence: Some(reason.to_string()),
                ops: serde_json::to_value(&ops)?,
            };
            anyhow::bail!(
                "{reason}\nminimal failing sequence ({} operations, seed {}):\n{ops:#?}{}",
                ops.len(),
                hex(&seed),
                record(&s, history)
            )
        }
        Err(e) => anyhow::bail!("{e}"),
    }
}

/// Writes a failing history to the subject's history file, if it names one; what to
/// add to the failure's message.
fn record(s: &Subject, mut history: History) -> String {
    let Some(path) = &s.history else {
        return String::new();
    };
    history.trial = path.file_stem().map(|n| n.to_string_lossy().into_owned());
    let written = serde_json::to_string_pretty(&history)
        .map_err(std::io::Error::other)
        .and_then(|text| {
            path.parent().map_or(Ok(()), std::fs::create_dir_all)?;
            std::fs::write(path, text)
        });
    match written {
        Ok(()) => format!(
            "\nhistory: {} (prism-conformance --replay {} with the same target runs it again)",
            path.display(),
            path.display()
        ),
        Err(e) => format!("\nhistory not written to {}: {e}", path.display()),
    }
}

/// Runs `history` once against the subject: its first divergence from the model, or
/// `Ok` when there is none (the bug is gone).
pub async fn replay(s: Subject, history: &History) -> CaseResult {
    match history.model.as_str() {
        "keyvalue" => check_keyvalue(s, ops(history)?).await,
        "queue" => check_queue(s, ops(history)?).await,
        other => anyhow::bail!("unknown model {other:?}: expected keyvalue or queue"),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KvOp {
    Set(u8, u8),
    Get(u8),
    Delete(u8),
    Exists(u8),
}

fn kv_op() -> impl Strategy<Value = KvOp> {
    // Eight keys and four values, so operations collide often.
    prop_oneof![
        3 => (0u8..8, 0u8..4).prop_map(|(k, v)| KvOp::Set(k, v)),
        3 => (0u8..8).prop_map(KvOp::Get),
        2 => (0u8..8).prop_map(KvOp::Delete),
        1 => (0u8..8).prop_map(KvOp::Exists),
    ]
}

pub async fn keyvalue(s: Subject) -> CaseResult {
    run_model(s, "keyvalue", prop::collection::vec(kv_op(), 1..40), |s, ops| {
        Box::pin(check_keyvalue(s, ops))
    })
    .await
}

async fn check_keyvalue(s: Subject, ops: Vec<KvOp>) -> CaseResult {
    let kv = s.kv()?;
    let mut model: BTreeMap<u8, Bytes> = BTreeMap::new();
    // Value 0 is empty, to keep "empty" and "missing" apart.
    let value = |v: u8| Bytes::from(vec![b'v'; v as usize]);
    for (step, op) in ops.iter().enumerate() {
        match *op {
            KvOp::Set(k, v) => {
                kv.set(s.key([k]), value(v)).await?;
                model.insert(k, value(v));
            }
            KvOp::Get(k) => {
                let got = kv.get(s.key([k])).await?;
                ensure!(
                    got == model.get(&k).cloned(),
                    "step {step} {op:?}: got {got:?}, model {:?}",
                    model.get(&k)
                );
            }
            KvOp::Delete(k) => {
                let got = kv.delete(s.key([k])).await?;
                ensure!(
                    got == model.remove(&k).is_some(),
                    "step {step} {op:?}: delete reported {got}"
                );
            }
            KvOp::Exists(k) => {
                let got = kv.exists(s.key([k])).await?;
                ensure!(
                    got == model.contains_key(&k),
                    "step {step} {op:?}: exists reported {got}"
                );
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueOp {
    Enqueue,
    Receive(u32),
    Ack(usize),
    Nack(usize),
}

fn queue_op() -> impl Strategy<Value = QueueOp> {
    prop_oneof![
        3 => Just(QueueOp::Enqueue),
        3 => (1u32..4).prop_map(QueueOp::Receive),
        2 => any::<usize>().prop_map(QueueOp::Ack),
        1 => any::<usize>().prop_map(QueueOp::Nack),
    ]
}

pub async fn queue(s: Subject) -> CaseResult {
    run_model(s, "queue", prop::collection::vec(queue_op(), 1..30), |s, ops| {
        Box::pin(check_queue(s, ops))
    })
    .await
}

/// Visibility long enough that nothing times out during a sequence.
const VIS: Duration = Duration::from_secs(60);

async fn check_queue(s: Subject, ops: Vec<QueueOp>) -> CaseResult {
    let q = s.queue()?;
    let name = s.name("q");
    let mut next = 0u32;
    let mut ready: BTreeSet<Bytes> = BTreeSet::new();
    let mut in_flight: Vec<(String, Bytes)> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            QueueOp::Enqueue => {
                next += 1;
                let payload = Bytes::from(format!("p{next}"));
                q.enqueue(name.clone(), payload.clone()).await?;
                ready.insert(payload);
            }
            QueueOp::Receive(max) => {
                let wait = if ready.is_empty() {
                    Duration::ZERO
                } else {
                    Duration::from_secs(2)
                };
                let got = q.receive(name.clone(), max, VIS, wait).await?;
                ensure!(
                    got.len() <= max as usize,
                    "step {step}: {} messages for max {max}",
                    got.len()
                );
                ensure!(
                    ready.is_empty() || !got.is_empty(),
                    "step {step}: nothing received with {} ready",
                    ready.len()
                );
                for m in got {
                    ensure!(
                        ready.remove(&m.payload),
                        "step {step}: received {:?}, which is not ready (in flight or acked)",
                        m.payload
                    );
                    in_flight.push((m.receipt, m.payload));
                }
            }
            QueueOp::Ack(i) if !in_flight.is_empty() => {
                let (receipt, payload) = in_flight.remove(i % in_flight.len());
                ensure!(
                    q.ack(name.clone(), receipt).await?,
                    "step {step}: ack of {payload:?} refused"
                );
            }
            QueueOp::Nack(i) if !in_flight.is_empty() => {
                let (receipt, payload) = in_flight.remove(i % in_flight.len());
                ensure!(
                    q.nack(name.clone(), receipt).await?,
                    "step {step}: nack of {payload:?} refused"
                );
                ready.insert(payload);
            }
            QueueOp::Ack(_) | QueueOp::Nack(_) => {}
        }
    }
    // Nothing unacked may be lost: give everything back and drain it.
    for (receipt, payload) in in_flight.drain(..) {
        ensure!(
            q.nack(name.clone(), receipt).await?,
            "final nack of {payload:?} refused"
        );
        ready.insert(payload);
    }
    let mut drained = BTreeSet::new();
    loop {
        let got = q.receive(name.clone(), 10, VIS, Duration::from_millis(100)).await?;
        if got.is_empty() {
            break;
        }
        for m in got {
            q.ack(name.clone(), m.receipt).await?;
            drained.insert(m.payload);
        }
    }
    ensure!(
        drained == ready,
        "after the sequence the queue held {drained:?}, the model {ready:?}"
    );
    Ok(())
}
