//! The keyvalue_scan model: a sorted set of keys. Scans of every prefix at every page
//! size must return exactly the model's keys under the prefix, in byte order, once each.
//! The keys are chosen to sit on the edges a driver gets wrong: glob metacharacters
//! (Redis MATCH), bytes 0x00 and 0xff (the end of a prefix range), upper case before
//! lower, multi-byte UTF-8, and the empty suffix (a key equal to the prefix).

use std::collections::BTreeSet;

use anyhow::ensure;
use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::{pick, run_model};
use crate::suites::{CaseResult, Subject};

/// Key suffixes, by number.
const KEYS: [&[u8]; 14] = [
    b"",
    b"a",
    b"a/1",
    b"a/10",
    b"a/2",
    b"a-",
    b"a*",
    b"a?x",
    b"[a]",
    b"ab",
    b"B",
    b"b\xff",
    b"b\xff\x00",
    "é".as_bytes(),
];

/// Scan prefixes, by number.
const PREFIXES: [&[u8]; 8] = [b"", b"a", b"a/", b"a*", b"[a", b"b\xff", b"B", b"z"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum ScanOp {
    /// Sets key number k.
    Set(u8),
    Delete(u8),
    /// Scans prefix number p to the end, n keys per page.
    Scan(u8, u8),
    /// Counts the keys under prefix number p.
    Count(u8),
}

fn op() -> impl Strategy<Value = ScanOp> {
    let keys = 0..KEYS.len() as u8;
    let prefixes = 0..PREFIXES.len() as u8;
    prop_oneof![
        4 => keys.clone().prop_map(ScanOp::Set),
        2 => keys.prop_map(ScanOp::Delete),
        3 => (prefixes.clone(), 1u8..5).prop_map(|(p, n)| ScanOp::Scan(p, n)),
        1 => prefixes.prop_map(ScanOp::Count),
    ]
}

pub async fn run(s: Subject) -> CaseResult {
    run_model(
        s,
        "scan",
        super::SEQUENCES,
        prop::collection::vec(op(), 1..30),
        |s, ops| Box::pin(check(s, ops)),
    )
    .await
}

pub(super) async fn check(s: Subject, ops: Vec<ScanOp>) -> CaseResult {
    let (kv, scan) = (s.kv()?, s.scan()?);
    let mut model: BTreeSet<&[u8]> = BTreeSet::new();
    let under = |model: &BTreeSet<&[u8]>, prefix: &[u8]| -> Vec<Bytes> {
        model
            .iter()
            .filter(|k| k.starts_with(prefix))
            .map(|k| s.key(k))
            .collect()
    };
    for (step, op) in ops.iter().enumerate() {
        match *op {
            ScanOp::Set(k) => {
                let key = pick(&KEYS, k)?;
                kv.set(s.key(key), Bytes::from_static(b"v")).await?;
                model.insert(key);
            }
            ScanOp::Delete(k) => {
                let key = pick(&KEYS, k)?;
                let got = kv.delete(s.key(key)).await?;
                ensure!(got == model.remove(key), "step {step} {op:?}: delete reported {got}");
            }
            ScanOp::Scan(p, n) => {
                let prefix = pick(&PREFIXES, p)?;
                let got = s.scan_all(prefix, u32::from(n.max(1))).await?;
                let want = under(&model, prefix);
                ensure!(
                    got == want,
                    "step {step} {op:?}: scan of {:?} by {n} gave {got:?}, the model {want:?}",
                    Bytes::copy_from_slice(prefix)
                );
            }
            ScanOp::Count(p) => {
                let prefix = pick(&PREFIXES, p)?;
                let got = scan.count(s.key(prefix)).await?;
                let want = under(&model, prefix).len() as u64;
                ensure!(
                    got == want,
                    "step {step} {op:?}: count of {:?} is {got}, the model {want}",
                    Bytes::copy_from_slice(prefix)
                );
            }
        }
    }
    Ok(())
}
