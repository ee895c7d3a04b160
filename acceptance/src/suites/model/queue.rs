//! The queue_basic model: a set of ready payloads and a list of deliveries in flight.
//! Visibility is long enough that nothing times out during a sequence.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::ensure;
use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::run_model;
use crate::suites::{CaseResult, Subject};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum QueueOp {
    Enqueue,
    Receive(u32),
    Ack(usize),
    Nack(usize),
}

fn op() -> impl Strategy<Value = QueueOp> {
    prop_oneof![
        3 => Just(QueueOp::Enqueue),
        3 => (1u32..4).prop_map(QueueOp::Receive),
        2 => any::<usize>().prop_map(QueueOp::Ack),
        1 => any::<usize>().prop_map(QueueOp::Nack),
    ]
}

pub async fn run(s: Subject) -> CaseResult {
    run_model(
        s,
        "queue",
        super::SEQUENCES,
        prop::collection::vec(op(), 1..30),
        |s, ops| Box::pin(check(s, ops)),
    )
    .await
}

/// Visibility long enough that nothing times out during a sequence.
const VIS: Duration = Duration::from_secs(60);

pub(super) async fn check(s: Subject, ops: Vec<QueueOp>) -> CaseResult {
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
