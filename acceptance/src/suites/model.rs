//! Model-based checks: random operation sequences run against the subject and a simple
//! reference model side by side. proptest shrinks a failure to the minimal sequence,
//! which the case's error prints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::ensure;
use bytes::Bytes;
use futures::future::BoxFuture;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};

use super::{CaseResult, Subject};

/// Sequences per run: enough to find ordering bugs, few enough to run through a proxy.
const SEQUENCES: u32 = 32;

/// Runs `check` on random sequences from `strategy`, each with a fresh sub-prefix.
async fn run_model<Op, S>(
    s: Subject,
    strategy: S,
    check: fn(Subject, Vec<Op>) -> BoxFuture<'static, CaseResult>,
) -> CaseResult
where
    Op: Debug + Clone + Send + 'static,
    S: Strategy<Value = Vec<Op>> + Send + 'static,
{
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut runner = TestRunner::new(Config {
            cases: SEQUENCES,
            failure_persistence: None,
            ..Config::default()
        });
        let sequence = AtomicU64::new(0);
        let result = runner.run(&strategy, |ops| {
            let n = sequence.fetch_add(1, Ordering::Relaxed);
            let sub = Subject {
                prefix: format!("{}m{n}:", s.prefix),
                ..s.clone()
            };
            handle
                .block_on(check(sub, ops))
                .map_err(|e| TestCaseError::fail(format!("{e:#}")))
        });
        match result {
            Ok(()) => Ok(()),
            Err(TestError::Fail(reason, ops)) => {
                anyhow::bail!(
                    "{reason}\nminimal failing sequence ({} operations):\n{ops:#?}",
                    ops.len()
                )
            }
            Err(e) => anyhow::bail!("{e}"),
        }
    })
    .await?
}

#[derive(Debug, Clone)]
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
    run_model(s, prop::collection::vec(kv_op(), 1..40), |s, ops| {
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

#[derive(Debug, Clone)]
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
    run_model(s, prop::collection::vec(queue_op(), 1..30), |s, ops| {
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
