//! keyvalue_basic: set, get, delete, exists.

use anyhow::ensure;
use bytes::Bytes;
use prism_proxy::{BackendError, Interface};

use super::{Case, CaseResult, Subject, b};
use crate::{Capability, case};

pub fn cases() -> Vec<Case> {
    let i = Interface::KeyvalueBasic;
    vec![
        case!(i, missing_key_is_not_found),
        case!(i, empty_value_is_distinct_from_missing),
        case!(i, overwrite_replaces),
        case!(i, delete_reports_whether_key_existed),
        case!(i, binary_and_unicode_keys),
        case!(i, value_of_256_kib_round_trips),
        case!(i, value_at_limit_and_just_over, needs: [Capability::EnforcesLimits]),
        case!(i, concurrent_writers_are_safe),
        case!(i, model_random_sequences),
    ]
}

async fn missing_key_is_not_found(s: Subject) -> CaseResult {
    let kv = s.kv()?;
    ensure!(
        kv.get(s.key("nope")).await?.is_none(),
        "get of a missing key must be None"
    );
    ensure!(
        !kv.exists(s.key("nope")).await?,
        "exists of a missing key must be false"
    );
    Ok(())
}

async fn empty_value_is_distinct_from_missing(s: Subject) -> CaseResult {
    let kv = s.kv()?;
    kv.set(s.key("empty"), Bytes::new()).await?;
    let got = kv.get(s.key("empty")).await?;
    ensure!(
        got == Some(Bytes::new()),
        "empty value must be found and empty, got {got:?}"
    );
    ensure!(kv.exists(s.key("empty")).await?, "a key with an empty value exists");
    Ok(())
}

async fn overwrite_replaces(s: Subject) -> CaseResult {
    let kv = s.kv()?;
    kv.set(s.key("k"), b("first")).await?;
    kv.set(s.key("k"), b("second")).await?;
    let got = kv.get(s.key("k")).await?;
    ensure!(got == Some(b("second")), "after overwrite got {got:?}");
    Ok(())
}

async fn delete_reports_whether_key_existed(s: Subject) -> CaseResult {
    let kv = s.kv()?;
    ensure!(!kv.delete(s.key("k")).await?, "deleting a missing key reports false");
    kv.set(s.key("k"), b("v")).await?;
    ensure!(kv.delete(s.key("k")).await?, "deleting a present key reports true");
    ensure!(kv.get(s.key("k")).await?.is_none(), "a deleted key is gone");
    ensure!(
        !kv.delete(s.key("k")).await?,
        "deleting twice reports false the second time"
    );
    Ok(())
}

async fn binary_and_unicode_keys(s: Subject) -> CaseResult {
    let kv = s.kv()?;
    let keys: [&[u8]; 4] = [b"\x00\x01\xff\xfe", "ключ/键/🔑".as_bytes(), b"with space", b"\n\t"];
    for (i, suffix) in keys.iter().enumerate() {
        kv.set(s.key(suffix), Bytes::from(format!("v{i}"))).await?;
    }
    for (i, suffix) in keys.iter().enumerate() {
        let got = kv.get(s.key(suffix)).await?;
        ensure!(got == Some(Bytes::from(format!("v{i}"))), "key {suffix:?} got {got:?}");
    }
    Ok(())
}

async fn value_of_256_kib_round_trips(s: Subject) -> CaseResult {
    let kv = s.kv()?;
    let value: Bytes = (0..256 * 1024).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
    kv.set(s.key("big"), value.clone()).await?;
    ensure!(
        kv.get(s.key("big")).await? == Some(value),
        "256 KiB value changed on the way"
    );
    Ok(())
}

/// The proxy's default `max_value_bytes` (1 MiB).
const VALUE_LIMIT: usize = 1024 * 1024;

async fn value_at_limit_and_just_over(s: Subject) -> CaseResult {
    let kv = s.kv()?;
    kv.set(s.key("at"), Bytes::from(vec![1u8; VALUE_LIMIT])).await?;
    match kv.set(s.key("over"), Bytes::from(vec![1u8; VALUE_LIMIT + 1])).await {
        Err(BackendError::InvalidArgument { field, .. }) => {
            ensure!(
                field == "value",
                "the error must name the field `value`, named {field:?}"
            )
        }
        other => anyhow::bail!("a value one byte over the limit must be INVALID_ARGUMENT, got {other:?}"),
    }
    ensure!(kv.get(s.key("over")).await?.is_none(), "a refused value is not stored");
    Ok(())
}

async fn concurrent_writers_are_safe(s: Subject) -> CaseResult {
    let kv = s.kv()?;
    let writers = (0..100).map(|w| {
        let (kv, s) = (kv.clone(), s.clone());
        tokio::spawn(async move {
            for i in 0..5 {
                kv.set(s.key(format!("w{w}:{i}")), Bytes::from(format!("{w}:{i}")))
                    .await?;
                kv.set(s.key("shared"), Bytes::from(format!("writer-{w}"))).await?;
            }
            anyhow::Ok(())
        })
    });
    for writer in futures::future::join_all(writers).await {
        writer??;
    }
    for w in 0..100 {
        for i in 0..5 {
            let got = kv.get(s.key(format!("w{w}:{i}"))).await?;
            ensure!(got == Some(Bytes::from(format!("{w}:{i}"))), "w{w}:{i} got {got:?}");
        }
    }
    let shared = kv.get(s.key("shared")).await?.unwrap_or_default();
    let text = String::from_utf8_lossy(&shared);
    ensure!(
        text.strip_prefix("writer-")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n < 100),
        "the shared key must hold one writer's whole value, got {text:?}"
    );
    Ok(())
}

async fn model_random_sequences(s: Subject) -> CaseResult {
    super::model::keyvalue(s).await
}
