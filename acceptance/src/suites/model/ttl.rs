//! The keyvalue_ttl model: each key's value and life (persistent, or expiring after a
//! TTL set at a known instant). TTLs are minutes long so nothing expires by accident;
//! `Lapse` makes one key expire for real (a short TTL and a wait past it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::ensure;
use bytes::Bytes;
use prism_proxy::interfaces::TtlState;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::run_model;
use crate::suites::{CaseResult, Subject};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum TtlOp {
    /// Plain set (keyvalue_basic): the key becomes persistent.
    Set(u8, u8),
    /// set_with_ttl of key, value, and TTL number n (see [`long`]).
    SetWithTtl(u8, u8, u8),
    /// expire of key to TTL number n.
    Expire(u8, u8),
    Persist(u8),
    Ttl(u8),
    Get(u8),
    Delete(u8),
    /// A short expire, then a wait past it: the key is gone.
    Lapse(u8),
}

/// TTL number `n`: distinct, so a check tells which one applies.
fn long(n: u8) -> Duration {
    Duration::from_secs(100 + 10 * u64::from(n))
}

const SHORT: Duration = Duration::from_millis(200);
const PAST_SHORT: Duration = Duration::from_millis(450);
/// How far a reported remaining time may be above the TTL set (rounding to milliseconds).
const ROUNDING: Duration = Duration::from_millis(10);
/// How far below the TTL minus the time since it was set (a backend clock's granularity).
const GRANULARITY: Duration = Duration::from_secs(1);

fn op() -> impl Strategy<Value = TtlOp> {
    // Six keys, so operations on one key meet.
    prop_oneof![
        2 => (0u8..6, 0u8..4).prop_map(|(k, v)| TtlOp::Set(k, v)),
        3 => (0u8..6, 0u8..4, 0u8..8).prop_map(|(k, v, n)| TtlOp::SetWithTtl(k, v, n)),
        2 => (0u8..6, 0u8..8).prop_map(|(k, n)| TtlOp::Expire(k, n)),
        2 => (0u8..6).prop_map(TtlOp::Persist),
        3 => (0u8..6).prop_map(TtlOp::Ttl),
        2 => (0u8..6).prop_map(TtlOp::Get),
        1 => (0u8..6).prop_map(TtlOp::Delete),
        1 => (0u8..6).prop_map(TtlOp::Lapse),
    ]
}

pub async fn run(s: Subject) -> CaseResult {
    // Fewer sequences than the others: a lapse waits in real time.
    run_model(s, "ttl", 16, prop::collection::vec(op(), 1..24), |s, ops| {
        Box::pin(check(s, ops))
    })
    .await
}

/// A key's life in the model.
#[derive(Debug, Clone, Copy)]
enum Life {
    Persistent,
    /// The TTL, and an instant before the call that set it.
    Expiring(Duration, Instant),
}

pub(super) async fn check(s: Subject, ops: Vec<TtlOp>) -> CaseResult {
    let (kv, ttl) = (s.kv()?, s.ttl()?);
    let mut model: BTreeMap<u8, (Bytes, Life)> = BTreeMap::new();
    let value = |v: u8| Bytes::from(vec![b'v'; v as usize]);
    for (step, op) in ops.iter().enumerate() {
        match *op {
            TtlOp::Set(k, v) => {
                kv.set(s.key([k]), value(v)).await?;
                model.insert(k, (value(v), Life::Persistent));
            }
            TtlOp::SetWithTtl(k, v, n) => {
                let at = Instant::now();
                ttl.set_with_ttl(s.key([k]), value(v), long(n)).await?;
                model.insert(k, (value(v), Life::Expiring(long(n), at)));
            }
            TtlOp::Expire(k, n) => {
                let at = Instant::now();
                let got = ttl.expire(s.key([k]), long(n)).await?;
                let entry = model.get_mut(&k);
                ensure!(
                    got == entry.is_some(),
                    "step {step} {op:?}: expire reported {got} for a key that is {}",
                    if got { "missing" } else { "present" }
                );
                if let Some((_, life)) = entry {
                    *life = Life::Expiring(long(n), at);
                }
            }
            TtlOp::Persist(k) => {
                let got = ttl.persist(s.key([k])).await?;
                let entry = model.get_mut(&k);
                let expiring = matches!(entry, Some((_, Life::Expiring(..))));
                ensure!(
                    got == expiring,
                    "step {step} {op:?}: persist reported {got}, the key is {:?}",
                    entry.as_ref().map(|(_, life)| *life)
                );
                if let Some((_, life)) = entry {
                    *life = Life::Persistent;
                }
            }
            TtlOp::Ttl(k) => {
                let got = ttl.ttl(s.key([k])).await?;
                let ok = match (got, model.get(&k).map(|(_, life)| *life)) {
                    (TtlState::Missing, None) | (TtlState::Persistent, Some(Life::Persistent)) => true,
                    (TtlState::Expiring(left), Some(Life::Expiring(set, at))) => {
                        left <= set + ROUNDING && left + at.elapsed() + GRANULARITY >= set
                    }
                    _ => false,
                };
                ensure!(
                    ok,
                    "step {step} {op:?}: ttl reported {got:?}, the model has {:?}",
                    model.get(&k).map(|(_, life)| *life)
                );
            }
            TtlOp::Get(k) => {
                let got = kv.get(s.key([k])).await?;
                let want = model.get(&k).map(|(v, _)| v.clone());
                ensure!(got == want, "step {step} {op:?}: got {got:?}, model {want:?}");
            }
            TtlOp::Delete(k) => {
                let got = kv.delete(s.key([k])).await?;
                ensure!(
                    got == model.remove(&k).is_some(),
                    "step {step} {op:?}: delete reported {got}"
                );
            }
            TtlOp::Lapse(k) => {
                let got = ttl.expire(s.key([k]), SHORT).await?;
                ensure!(
                    got == model.remove(&k).is_some(),
                    "step {step} {op:?}: expire reported {got}"
                );
                tokio::time::sleep(PAST_SHORT).await;
                ensure!(
                    !kv.exists(s.key([k])).await?,
                    "step {step} {op:?}: the key outlived its TTL of {SHORT:?} by {:?}",
                    PAST_SHORT - SHORT
                );
            }
        }
    }
    Ok(())
}
