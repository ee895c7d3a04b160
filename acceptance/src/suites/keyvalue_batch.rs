//! keyvalue_batch: per-key results in request order.

use anyhow::ensure;
use bytes::Bytes;
use prism_proxy::Interface;

use super::{Case, CaseResult, Subject, b};
use crate::case;

pub fn cases() -> Vec<Case> {
    let i = Interface::KeyvalueBatch;
    vec![
        case!(i, batch_set_then_get_in_order),
        case!(i, batch_get_tells_missing_from_empty),
        case!(i, batch_delete_reports_each_key),
        case!(i, batch_of_500_keys),
        case!(i, model_random_sequences),
    ]
}

async fn batch_set_then_get_in_order(s: Subject) -> CaseResult {
    let batch = s.batch()?;
    let stored = batch
        .batch_set(vec![(s.key("a"), b("1")), (s.key("b"), b("2")), (s.key("c"), b("3"))])
        .await?;
    ensure!(stored == vec![true; 3], "stored {stored:?}");
    let got = batch.batch_get(vec![s.key("c"), s.key("a"), s.key("b")]).await?;
    ensure!(
        got == vec![Some(b("3")), Some(b("1")), Some(b("2"))],
        "order not kept: {got:?}"
    );
    Ok(())
}

async fn batch_get_tells_missing_from_empty(s: Subject) -> CaseResult {
    let batch = s.batch()?;
    batch.batch_set(vec![(s.key("empty"), Bytes::new())]).await?;
    let got = batch.batch_get(vec![s.key("missing"), s.key("empty")]).await?;
    ensure!(got == vec![None, Some(Bytes::new())], "got {got:?}");
    Ok(())
}

async fn batch_delete_reports_each_key(s: Subject) -> CaseResult {
    let batch = s.batch()?;
    batch
        .batch_set(vec![(s.key("a"), b("1")), (s.key("b"), b("2"))])
        .await?;
    let existed = batch.batch_delete(vec![s.key("a"), s.key("zz"), s.key("b")]).await?;
    ensure!(existed == vec![true, false, true], "existed {existed:?}");
    let got = batch.batch_get(vec![s.key("a"), s.key("b")]).await?;
    ensure!(got == vec![None, None], "deleted keys still there: {got:?}");
    Ok(())
}

async fn batch_of_500_keys(s: Subject) -> CaseResult {
    let batch = s.batch()?;
    let entries: Vec<(Bytes, Bytes)> = (0..500)
        .map(|i| (s.key(format!("k{i}")), Bytes::from(format!("v{i}"))))
        .collect();
    batch.batch_set(entries.clone()).await?;
    let got = batch
        .batch_get(entries.iter().map(|(k, _)| k.clone()).collect())
        .await?;
    let expected: Vec<Option<Bytes>> = entries.into_iter().map(|(_, v)| Some(v)).collect();
    ensure!(got == expected, "500-key batch does not round-trip");
    Ok(())
}

async fn model_random_sequences(s: Subject) -> CaseResult {
    super::model::batch(s).await
}
