//! The conformance cases, one module per interface, each written once against the
//! interface traits. A case gets a [`Subject`]: the backend under test plus a prefix no
//! other case uses, so cases can run concurrently against one instance.

mod keyvalue_basic;
mod keyvalue_batch;
mod keyvalue_scan;
mod keyvalue_ttl;
pub mod model;
mod pubsub_basic;
mod queue_basic;
mod timeseries_basic;

use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use futures::future::BoxFuture;
use prism_proxy::Interface;
use prism_proxy::backends::Backend;
use prism_proxy::interfaces::*;

use crate::Capability;

pub type CaseResult = anyhow::Result<()>;

/// One named conformance check.
pub struct Case {
    pub interface: Interface,
    pub name: &'static str,
    /// Other interfaces the case also uses.
    pub also: &'static [Interface],
    /// Capabilities the case needs; without them it is skipped.
    pub needs: &'static [Capability],
    pub run: fn(Subject) -> BoxFuture<'static, CaseResult>,
}

/// Declares a case from an `async fn(Subject) -> CaseResult`.
#[macro_export]
macro_rules! case {
    ($interface:expr, $f:ident) => {
        $crate::case!($interface, $f, also: [], needs: [])
    };
    ($interface:expr, $f:ident, needs: [$($cap:expr),*]) => {
        $crate::case!($interface, $f, also: [], needs: [$($cap),*])
    };
    ($interface:expr, $f:ident, also: [$($also:expr),*], needs: [$($cap:expr),*]) => {
        $crate::suites::Case {
            interface: $interface,
            name: stringify!($f),
            also: &[$($also),*],
            needs: &[$($cap),*],
            run: |s| Box::pin($f(s)),
        }
    };
}

/// Every case of every interface.
pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend(keyvalue_basic::cases());
    cases.extend(keyvalue_ttl::cases());
    cases.extend(keyvalue_scan::cases());
    cases.extend(keyvalue_batch::cases());
    cases.extend(pubsub_basic::cases());
    cases.extend(queue_basic::cases());
    cases.extend(timeseries_basic::cases());
    cases
}

/// The backend under test, as one case sees it.
#[derive(Clone)]
pub struct Subject {
    pub backend: Backend,
    /// Unique to this case: prefix every key and name with it.
    pub prefix: String,
    /// Where a failing model check writes its operation history, if anywhere.
    pub history: Option<std::path::PathBuf>,
    /// What the subject claims beyond its interfaces (model checks use only what it has).
    pub capabilities: Vec<crate::Capability>,
}

fn missing(interface: Interface) -> anyhow::Error {
    anyhow::anyhow!("the subject does not serve {interface}")
}

impl Subject {
    pub fn key(&self, suffix: impl AsRef<[u8]>) -> Bytes {
        let mut key = self.prefix.as_bytes().to_vec();
        key.extend_from_slice(suffix.as_ref());
        Bytes::from(key)
    }

    pub fn name(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    pub fn kv(&self) -> anyhow::Result<Arc<dyn KeyValueBasic>> {
        self.backend
            .keyvalue_basic
            .clone()
            .ok_or_else(|| missing(Interface::KeyvalueBasic))
    }
    pub fn ttl(&self) -> anyhow::Result<Arc<dyn KeyValueTtl>> {
        self.backend
            .keyvalue_ttl
            .clone()
            .ok_or_else(|| missing(Interface::KeyvalueTtl))
    }
    pub fn scan(&self) -> anyhow::Result<Arc<dyn KeyValueScan>> {
        self.backend
            .keyvalue_scan
            .clone()
            .ok_or_else(|| missing(Interface::KeyvalueScan))
    }
    pub fn batch(&self) -> anyhow::Result<Arc<dyn KeyValueBatch>> {
        self.backend
            .keyvalue_batch
            .clone()
            .ok_or_else(|| missing(Interface::KeyvalueBatch))
    }
    pub fn pubsub(&self) -> anyhow::Result<Arc<dyn PubSubBasic>> {
        self.backend
            .pubsub_basic
            .clone()
            .ok_or_else(|| missing(Interface::PubsubBasic))
    }
    pub fn queue(&self) -> anyhow::Result<Arc<dyn QueueBasic>> {
        self.backend
            .queue_basic
            .clone()
            .ok_or_else(|| missing(Interface::QueueBasic))
    }
    pub fn series(&self) -> anyhow::Result<Arc<dyn TimeSeriesBasic>> {
        self.backend
            .timeseries_basic
            .clone()
            .ok_or_else(|| missing(Interface::TimeseriesBasic))
    }

    /// Every key under `prefix` (relative to the subject's prefix), paging by `page`.
    pub async fn scan_all(&self, prefix: impl AsRef<[u8]>, page: u32) -> anyhow::Result<Vec<Bytes>> {
        let scan = self.scan()?;
        let mut keys = Vec::new();
        let mut cursor = None;
        for _ in 0..MAX_PAGES {
            let got = scan.scan(self.key(&prefix), page, cursor).await.context("scan")?;
            anyhow::ensure!(
                got.keys.len() <= page as usize,
                "a page of {} keys for limit {page}",
                got.keys.len()
            );
            keys.extend(got.keys);
            match got.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(keys),
            }
        }
        anyhow::bail!("scan did not finish after {MAX_PAGES} pages (does the cursor advance?)")
    }
}

/// More pages than any suite's data needs at page size 1.
const MAX_PAGES: usize = 10_000;

/// `Bytes` from a string literal.
pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}
