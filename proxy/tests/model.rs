//! Model-based test: random operation sequences on memstore key-value, compared after
//! every step with a `BTreeMap` reference. proptest shrinks a failure to the minimal
//! sequence and prints it.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use bytes::Bytes;
use prism_proxy::backends::memstore::MemStore;
use prism_proxy::interfaces::{KeyValueBasic, KeyValueBatch, KeyValueScan};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Set(u8, Vec<u8>),
    Get(u8),
    Delete(u8),
    Exists(u8),
    Scan { prefix: u8, page: u32 },
    Count(u8),
    BatchSet(Vec<(u8, Vec<u8>)>),
    BatchDelete(Vec<u8>),
}

/// Keys from a small space so operations collide; two-byte keys give prefixes meaning.
fn key(k: u8) -> Bytes {
    Bytes::from(vec![b'a' + (k >> 3) % 4, b'0' + k % 8])
}

fn op() -> impl Strategy<Value = Op> {
    let value = prop::collection::vec(any::<u8>(), 0..4);
    prop_oneof![
        4 => (any::<u8>(), value.clone()).prop_map(|(k, v)| Op::Set(k, v)),
        3 => any::<u8>().prop_map(Op::Get),
        2 => any::<u8>().prop_map(Op::Delete),
        1 => any::<u8>().prop_map(Op::Exists),
        1 => (any::<u8>(), 1u32..5).prop_map(|(prefix, page)| Op::Scan { prefix, page }),
        1 => any::<u8>().prop_map(Op::Count),
        1 => prop::collection::vec((any::<u8>(), value), 1..4).prop_map(Op::BatchSet),
        1 => prop::collection::vec(any::<u8>(), 1..4).prop_map(Op::BatchDelete),
    ]
}

async fn check(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let kv = MemStore::new().kv;
    let mut model: BTreeMap<Bytes, Bytes> = BTreeMap::new();
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Set(k, v) => {
                kv.set(key(k), v.clone().into()).await.unwrap();
                model.insert(key(k), v.into());
            }
            Op::Get(k) => prop_assert_eq!(
                kv.get(key(k)).await.unwrap(),
                model.get(&key(k)).cloned(),
                "step {}",
                step
            ),
            Op::Delete(k) => prop_assert_eq!(
                kv.delete(key(k)).await.unwrap(),
                model.remove(&key(k)).is_some(),
                "step {}",
                step
            ),
            Op::Exists(k) => prop_assert_eq!(
                kv.exists(key(k)).await.unwrap(),
                model.contains_key(&key(k)),
                "step {}",
                step
            ),
            Op::Scan { prefix, page } => {
                let prefix = key(prefix).slice(0..1);
                let mut got = Vec::new();
                let mut cursor = None;
                loop {
                    let p = kv.scan(prefix.clone(), page, cursor).await.unwrap();
                    got.extend(p.keys);
                    match p.next_cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                let expected: Vec<Bytes> = model.keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
                prop_assert_eq!(got, expected, "step {}", step);
            }
            Op::Count(k) => {
                let prefix = key(k).slice(0..1);
                let expected = model.keys().filter(|k| k.starts_with(&prefix)).count() as u64;
                prop_assert_eq!(kv.count(prefix).await.unwrap(), expected, "step {}", step);
            }
            Op::BatchSet(entries) => {
                let stored = kv
                    .batch_set(entries.iter().map(|(k, v)| (key(*k), Bytes::from(v.clone()))).collect())
                    .await
                    .unwrap();
                prop_assert!(stored.iter().all(|s| *s));
                for (k, v) in entries {
                    model.insert(key(k), v.into());
                }
            }
            Op::BatchDelete(keys) => {
                let got = kv.batch_delete(keys.iter().map(|k| key(*k)).collect()).await.unwrap();
                let expected: Vec<bool> = keys.iter().map(|k| model.remove(&key(*k)).is_some()).collect();
                prop_assert_eq!(got, expected, "step {}", step);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn memstore_keyvalue_matches_btreemap_model(ops in prop::collection::vec(op(), 1..60)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(check(ops))?;
    }
}
