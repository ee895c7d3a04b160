//! The keyvalue_basic model: a map. Eight keys and four values, so operations collide.

use std::collections::BTreeMap;

use anyhow::ensure;
use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::run_model;
use crate::suites::{CaseResult, Subject};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum KvOp {
    Set(u8, u8),
    Get(u8),
    Delete(u8),
    Exists(u8),
}

fn op() -> impl Strategy<Value = KvOp> {
    // Eight keys and four values, so operations collide often.
    prop_oneof![
        3 => (0u8..8, 0u8..4).prop_map(|(k, v)| KvOp::Set(k, v)),
        3 => (0u8..8).prop_map(KvOp::Get),
        2 => (0u8..8).prop_map(KvOp::Delete),
        1 => (0u8..8).prop_map(KvOp::Exists),
    ]
}

pub async fn run(s: Subject) -> CaseResult {
    run_model(
        s,
        "keyvalue",
        super::SEQUENCES,
        prop::collection::vec(op(), 1..40),
        |s, ops| Box::pin(check(s, ops)),
    )
    .await
}

pub(super) async fn check(s: Subject, ops: Vec<KvOp>) -> CaseResult {
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
