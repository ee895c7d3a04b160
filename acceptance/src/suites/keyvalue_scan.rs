//! keyvalue_scan: paging and prefixes.

use anyhow::ensure;
use bytes::Bytes;
use prism_proxy::Interface;

use super::{Case, CaseResult, Subject, b};
use crate::case;

pub fn cases() -> Vec<Case> {
    let i = Interface::KeyvalueScan;
    vec![
        case!(i, pages_return_every_key_exactly_once, also: [Interface::KeyvalueBasic], needs: []),
        case!(i, prefix_isolation, also: [Interface::KeyvalueBasic], needs: []),
        case!(i, count_matches_scan, also: [Interface::KeyvalueBasic], needs: []),
        case!(i, empty_prefix_match_is_empty, also: [Interface::KeyvalueBasic], needs: []),
        case!(i, keys_present_throughout_survive_writes_between_pages, also: [Interface::KeyvalueBasic], needs: []),
        case!(i, model_random_sequences, also: [Interface::KeyvalueBasic], needs: []),
    ]
}

async fn pages_return_every_key_exactly_once(s: Subject) -> CaseResult {
    let kv = s.kv()?;
    let expected: Vec<Bytes> = (0..57).map(|i| s.key(format!("p:{i:03}"))).collect();
    for key in &expected {
        kv.set(key.clone(), b("v")).await?;
    }
    for page in [1, 10, 56, 57, 100] {
        let mut got = s.scan_all("p:", page).await?;
        let total = got.len();
        got.sort();
        got.dedup();
        ensure!(
            got.len() == total,
            "page size {page}: {} keys returned more than once",
            total - got.len()
        );
        ensure!(
            got == expected,
            "page size {page}: got {} keys, expected {}",
            got.len(),
            expected.len()
        );
    }
    Ok(())
}

async fn prefix_isolation(s: Subject) -> CaseResult {
    let kv = s.kv()?;
    for suffix in ["a", "a:", "a:1", "a:2", "a;", "b:1", "A:1"] {
        kv.set(s.key(suffix), b("v")).await?;
    }
    let mut got = s.scan_all("a:", 10).await?;
    got.sort();
    ensure!(
        got == vec![s.key("a:"), s.key("a:1"), s.key("a:2")],
        "prefix a: gave {got:?}"
    );
    Ok(())
}

async fn count_matches_scan(s: Subject) -> CaseResult {
    let (kv, scan) = (s.kv()?, s.scan()?);
    for i in 0..23 {
        kv.set(s.key(format!("c:{i}")), b("v")).await?;
    }
    kv.delete(s.key("c:7")).await?;
    ensure!(scan.count(s.key("c:")).await? == 22, "count after 23 sets and 1 delete");
    ensure!(s.scan_all("c:", 5).await?.len() == 22, "scan agrees with count");
    Ok(())
}

async fn empty_prefix_match_is_empty(s: Subject) -> CaseResult {
    let scan = s.scan()?;
    let page = scan.scan(s.key("none:"), 10, None).await?;
    ensure!(page.keys.is_empty() && page.next_cursor.is_none(), "got {page:?}");
    ensure!(scan.count(s.key("none:")).await? == 0, "count of nothing");
    Ok(())
}

async fn keys_present_throughout_survive_writes_between_pages(s: Subject) -> CaseResult {
    let (kv, scan) = (s.kv()?, s.scan()?);
    for i in 0..20 {
        kv.set(s.key(format!("w:{i:02}")), b("v")).await?;
    }
    let first = scan.scan(s.key("w:"), 10, None).await?;
    kv.delete(s.key("w:00")).await?;
    kv.set(s.key("w:005"), b("v")).await?;
    kv.set(s.key("w:99"), b("v")).await?;
    let mut all = first.keys;
    let mut cursor = first.next_cursor;
    while let Some(c) = cursor {
        let page = scan.scan(s.key("w:"), 10, Some(c)).await?;
        all.extend(page.keys);
        cursor = page.next_cursor;
    }
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    ensure!(unique.len() == all.len(), "a key was returned twice: {all:?}");
    for i in 1..20 {
        ensure!(
            all.contains(&s.key(format!("w:{i:02}"))),
            "w:{i:02} was present throughout but not returned"
        );
    }
    Ok(())
}

async fn model_random_sequences(s: Subject) -> CaseResult {
    super::model::scan(s).await
}
