//! keyvalue_ttl: expiry, in real time (short TTLs).

use std::time::Duration;

use anyhow::ensure;
use prism_proxy::Interface;
use prism_proxy::interfaces::TtlState;

use super::{Case, CaseResult, Subject, b};
use crate::{Capability, case};

const SHORT: Duration = Duration::from_millis(400);
const PAST_SHORT: Duration = Duration::from_millis(700);

pub fn cases() -> Vec<Case> {
    let i = Interface::KeyvalueTtl;
    vec![
        case!(i, expired_key_is_invisible_to_get_and_exists, also: [Interface::KeyvalueBasic], needs: []),
        case!(i, expired_key_is_invisible_to_scan, also: [Interface::KeyvalueBasic, Interface::KeyvalueScan], needs: []),
        case!(i, ttl_tells_missing_from_persistent, also: [Interface::KeyvalueBasic], needs: []),
        case!(i, ttl_reports_remaining_time, needs: [Capability::TtlRemaining]),
        case!(i, expire_on_missing_key_is_not_applied),
        case!(i, persist_removes_expiry, also: [Interface::KeyvalueBasic], needs: []),
        case!(i, plain_set_clears_expiry, also: [Interface::KeyvalueBasic], needs: []),
        case!(i, model_random_sequences, also: [Interface::KeyvalueBasic], needs: [Capability::TtlRemaining]),
    ]
}

async fn expired_key_is_invisible_to_get_and_exists(s: Subject) -> CaseResult {
    let (kv, ttl) = (s.kv()?, s.ttl()?);
    ttl.set_with_ttl(s.key("t"), b("v"), SHORT).await?;
    ensure!(kv.get(s.key("t")).await? == Some(b("v")), "visible before expiry");
    tokio::time::sleep(PAST_SHORT).await;
    ensure!(kv.get(s.key("t")).await?.is_none(), "get must not see an expired key");
    ensure!(!kv.exists(s.key("t")).await?, "exists must not see an expired key");
    ensure!(
        ttl.ttl(s.key("t")).await? == TtlState::Missing,
        "ttl of an expired key is Missing"
    );
    Ok(())
}

async fn expired_key_is_invisible_to_scan(s: Subject) -> CaseResult {
    let (kv, ttl, scan) = (s.kv()?, s.ttl()?, s.scan()?);
    ttl.set_with_ttl(s.key("x:gone"), b("v"), SHORT).await?;
    kv.set(s.key("x:kept"), b("v")).await?;
    tokio::time::sleep(PAST_SHORT).await;
    let keys = s.scan_all("x:", 10).await?;
    ensure!(
        keys == vec![s.key("x:kept")],
        "scan must skip expired keys, got {keys:?}"
    );
    ensure!(scan.count(s.key("x:")).await? == 1, "count must skip expired keys");
    Ok(())
}

async fn ttl_tells_missing_from_persistent(s: Subject) -> CaseResult {
    let (kv, ttl) = (s.kv()?, s.ttl()?);
    kv.set(s.key("p"), b("v")).await?;
    ensure!(
        ttl.ttl(s.key("p")).await? == TtlState::Persistent,
        "a key without expiry is Persistent"
    );
    ensure!(
        ttl.ttl(s.key("none")).await? == TtlState::Missing,
        "a missing key is Missing"
    );
    Ok(())
}

async fn ttl_reports_remaining_time(s: Subject) -> CaseResult {
    let ttl = s.ttl()?;
    ttl.set_with_ttl(s.key("t"), b("v"), Duration::from_secs(60)).await?;
    match ttl.ttl(s.key("t")).await? {
        TtlState::Expiring(left) => ensure!(
            left <= Duration::from_secs(60) && left > Duration::from_secs(50),
            "remaining {left:?} for a 60 s TTL"
        ),
        other => anyhow::bail!("expected Expiring, got {other:?}"),
    }
    Ok(())
}

async fn expire_on_missing_key_is_not_applied(s: Subject) -> CaseResult {
    let ttl = s.ttl()?;
    ensure!(
        !ttl.expire(s.key("none"), SHORT).await?,
        "expire of a missing key reports false"
    );
    ensure!(
        ttl.ttl(s.key("none")).await? == TtlState::Missing,
        "and creates nothing"
    );
    Ok(())
}

async fn persist_removes_expiry(s: Subject) -> CaseResult {
    let (kv, ttl) = (s.kv()?, s.ttl()?);
    kv.set(s.key("k"), b("v")).await?;
    ensure!(
        !ttl.persist(s.key("k")).await?,
        "persist of a key without expiry reports false"
    );
    ensure!(
        ttl.expire(s.key("k"), SHORT).await?,
        "expire of a present key reports true"
    );
    ensure!(
        ttl.persist(s.key("k")).await?,
        "persist of an expiring key reports true"
    );
    tokio::time::sleep(PAST_SHORT).await;
    ensure!(
        kv.get(s.key("k")).await? == Some(b("v")),
        "a persisted key must not expire"
    );
    ensure!(ttl.ttl(s.key("k")).await? == TtlState::Persistent, "and is Persistent");
    Ok(())
}

async fn plain_set_clears_expiry(s: Subject) -> CaseResult {
    let (kv, ttl) = (s.kv()?, s.ttl()?);
    ttl.set_with_ttl(s.key("k"), b("v1"), SHORT).await?;
    kv.set(s.key("k"), b("v2")).await?;
    tokio::time::sleep(PAST_SHORT).await;
    ensure!(
        kv.get(s.key("k")).await? == Some(b("v2")),
        "set replaces the value and its expiry"
    );
    Ok(())
}

async fn model_random_sequences(s: Subject) -> CaseResult {
    super::model::ttl(s).await
}
