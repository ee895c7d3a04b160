//! Model-based checks: random operation sequences run against the subject and a simple
//! reference model side by side. proptest shrinks a failure to the minimal sequence,
//! which the case's error prints and, when the subject names a history file, writes as a
//! [`History`] (the seed of the run and the shrunk operations) that [`replay`] runs again
//! to its first divergence (`prism-conformance --replay FILE`). The histories committed in
//! `acceptance/regressions.json` run first on every run, as proptest's persistence does.
//!
//! One file per model: its operation type (as histories write it), its strategy, and the
//! check that runs one sequence against the subject and the model side by side.

mod batch;
mod keyvalue;
mod pubsub;
mod queue;
mod scan;
mod timeseries;
mod ttl;

pub use batch::run as batch;
pub use keyvalue::run as keyvalue;
pub use pubsub::run as pubsub;
pub use queue::run as queue;
pub use scan::run as scan;
pub(crate) use timeseries::reference as timeseries_reference;
pub use timeseries::run as timeseries;
pub use ttl::run as ttl;

use std::fmt::Debug;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use futures::future::BoxFuture;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{CaseResult, Subject};

/// Sequences per run: enough to find ordering bugs, few enough to run through a proxy.
/// Models whose operations wait on real time run fewer.
const SEQUENCES: u32 = 32;

/// An operation history of a model check: one that failed (written beside the report),
/// or one committed to run first on every run (`acceptance/regressions.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct History {
    /// The model it runs against: one of [`MODELS`].
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
        Ops::of(&history).with_context(|| path.display().to_string())?;
        Ok(history)
    }
}

/// The models a history may name.
pub const MODELS: [&str; 7] = ["keyvalue", "ttl", "scan", "batch", "pubsub", "queue", "timeseries"];

/// A history's operations, parsed by its model's operation type.
enum Ops {
    Keyvalue(Vec<keyvalue::KvOp>),
    Ttl(Vec<ttl::TtlOp>),
    Scan(Vec<scan::ScanOp>),
    Batch(Vec<batch::BatchOp>),
    PubSub(Vec<pubsub::PubSubOp>),
    Queue(Vec<queue::QueueOp>),
    TimeSeries(Vec<timeseries::TimeSeriesOp>),
}

impl Ops {
    fn of(history: &History) -> anyhow::Result<Ops> {
        Ok(match history.model.as_str() {
            "keyvalue" => Ops::Keyvalue(ops(history)?),
            "ttl" => Ops::Ttl(ops(history)?),
            "scan" => Ops::Scan(ops(history)?),
            "batch" => Ops::Batch(ops(history)?),
            "pubsub" => Ops::PubSub(ops(history)?),
            "queue" => Ops::Queue(ops(history)?),
            "timeseries" => Ops::TimeSeries(ops(history)?),
            other => anyhow::bail!("unknown model {other:?}: expected one of {}", MODELS.join(", ")),
        })
    }
}

/// Entry `n` of one of a model's tables (a history names keys, hosts and the like by
/// number); an error for a number a hand-edited history put past its end.
fn pick<T: Copy>(table: &[T], n: u8) -> anyhow::Result<T> {
    table
        .get(n as usize)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("number {n} is out of the model's table of {}", table.len()))
}

fn ops<Op: DeserializeOwned>(history: &History) -> anyhow::Result<Vec<Op>> {
    serde_json::from_value(history.ops.clone()).context("the history's ops")
}

/// The committed histories, run first.
fn regressions() -> anyhow::Result<Vec<History>> {
    serde_json::from_str(include_str!("../../../regressions.json")).context("acceptance/regressions.json")
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
pub(super) async fn run_model<Op, S>(
    s: Subject,
    model: &'static str,
    sequences: u32,
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
                cases: sequences,
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
    match Ops::of(history)? {
        Ops::Keyvalue(ops) => keyvalue::check(s, ops).await,
        Ops::Ttl(ops) => ttl::check(s, ops).await,
        Ops::Scan(ops) => scan::check(s, ops).await,
        Ops::Batch(ops) => batch::check(s, ops).await,
        Ops::PubSub(ops) => pubsub::check(s, ops).await,
        Ops::Queue(ops) => queue::check(s, ops).await,
        Ops::TimeSeries(ops) => timeseries::check(s, ops).await,
    }
}
