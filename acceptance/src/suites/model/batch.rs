//! The keyvalue_batch model: a map, a batch applied entry by entry in request order. A
//! batch may name one key twice: the later entry wins a set, and only the first of two
//! deletes of a key finds it.

use std::collections::BTreeMap;

use anyhow::ensure;
use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::run_model;
use crate::suites::{CaseResult, Subject};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum BatchOp {
    /// (key, value) pairs.
    Set(Vec<(u8, u8)>),
    Get(Vec<u8>),
    Delete(Vec<u8>),
}

fn op() -> impl Strategy<Value = BatchOp> {
    // Six keys and batches of up to eight: keys repeat within a batch often.
    let keys = || prop::collection::vec(0u8..6, 1..8);
    prop_oneof![
        3 => prop::collection::vec((0u8..6, 0u8..4), 1..8).prop_map(BatchOp::Set),
        3 => keys().prop_map(BatchOp::Get),
        2 => keys().prop_map(BatchOp::Delete),
    ]
}

pub async fn run(s: Subject) -> CaseResult {
    run_model(
        s,
        "batch",
        super::SEQUENCES,
        prop::collection::vec(op(), 1..20),
        |s, ops| Box::pin(check(s, ops)),
    )
    .await
}

pub(super) async fn check(s: Subject, ops: Vec<BatchOp>) -> CaseResult {
    let batch = s.batch()?;
    let mut model: BTreeMap<u8, Bytes> = BTreeMap::new();
    // Value 0 is empty, to keep "empty" and "missing" apart.
    let value = |v: u8| Bytes::from(vec![b'v'; v as usize]);
    let keys = |ks: &[u8]| ks.iter().map(|k| s.key([*k])).collect::<Vec<_>>();
    for (step, op) in ops.iter().enumerate() {
        match op {
            BatchOp::Set(entries) => {
                let got = batch
                    .batch_set(entries.iter().map(|(k, v)| (s.key([*k]), value(*v))).collect())
                    .await?;
                for (k, v) in entries {
                    model.insert(*k, value(*v));
                }
                ensure!(got == vec![true; entries.len()], "step {step} {op:?}: stored {got:?}");
            }
            BatchOp::Get(ks) => {
                let got = batch.batch_get(keys(ks)).await?;
                let want: Vec<Option<Bytes>> = ks.iter().map(|k| model.get(k).cloned()).collect();
                ensure!(got == want, "step {step} {op:?}: got {got:?}, the model {want:?}");
            }
            BatchOp::Delete(ks) => {
                let got = batch.batch_delete(keys(ks)).await?;
                let want: Vec<bool> = ks.iter().map(|k| model.remove(k).is_some()).collect();
                ensure!(got == want, "step {step} {op:?}: existed {got:?}, the model {want:?}");
            }
        }
    }
    Ok(())
}
