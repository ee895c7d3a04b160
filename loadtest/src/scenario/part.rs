//! Several scenarios in one file (`scenarios:`), as k6 has them: each its own load
//! model, stages, start offset and operations, all running at the same time against one
//! target. A file with `load` and `operations` at the top is one scenario, run the same
//! way as a run of one part.
//!
//! Each part runs as a [`Scenario`] of its own (built by [`Scenario::parts`]), so the
//! engine, goose and sharding need not know about parts; results go into one set of
//! stats where each part's operations have their own range ([`Layout`]) and are named
//! `<scenario>/<operation>`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use super::{Load, Operation, Scenario};

/// One of several scenarios of a file.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// When it starts, after the run starts (default `0s`).
    #[serde(default, with = "humantime_serde", skip_serializing_if = "Duration::is_zero")]
    #[schemars(with = "String")]
    pub start: Duration,
    pub load: Load,
    pub operations: Vec<Operation>,
}

/// `scenarios:` as a map, with the errors of each part's `load` (reported by its own
/// deserializer as `load.<field>: ...`) rewritten to the part's path, so they are placed
/// at their line.
pub(super) fn deserialize_parts<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Part>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = BTreeMap<String, Part>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a mapping of scenario names to {start, load, operations}")
        }
        fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
            let mut parts = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                let part = map.next_value::<Part>().map_err(|e| {
                    let text = e.to_string();
                    // Only the custom `load.<field>: message` lines of Load's reader; serde's
                    // own errors carry their position already.
                    if text.lines().all(|l| l.starts_with("load.")) {
                        let lines: Vec<String> = text.lines().map(|l| format!("scenarios.{name}.{l}")).collect();
                        serde::de::Error::custom(lines.join("\n"))
                    } else {
                        e
                    }
                })?;
                if parts.insert(name.clone(), part).is_some() {
                    return Err(serde::de::Error::custom(format!("scenarios.{name}: named twice")));
                }
            }
            Ok(parts)
        }
    }
    d.deserialize_map(Visitor)
}

/// One part as the file has it, borrowed.
pub(crate) struct PartRef<'a> {
    /// Its name under `scenarios`; `None` for a file of one scenario.
    pub name: Option<&'a str>,
    pub start: Duration,
    pub load: &'a Load,
    pub operations: &'a [Operation],
}

impl PartRef<'_> {
    /// The field path of its operations (`operations`, `scenarios.probe.operations`).
    pub fn operations_path(&self) -> String {
        match self.name {
            Some(name) => format!("scenarios.{name}.operations"),
            None => "operations".to_string(),
        }
    }
}

/// One part as it runs: a scenario of its own, started `start` after the run.
#[derive(Debug, Clone)]
pub struct RunPart {
    /// Its name under `scenarios`; `None` for a file of one scenario.
    pub name: Option<String>,
    pub start: Duration,
    pub scenario: Scenario,
}

/// Where each part's results are in the run's stats.
#[derive(Debug, Clone)]
pub struct Span {
    /// `None` for a file of one scenario.
    pub name: Option<String>,
    /// Its reported operations' indices.
    pub ops: Range<usize>,
    pub start: Duration,
    pub warmup: Duration,
    pub duration: Duration,
    pub open: bool,
}

impl Span {
    /// The operation's name within its part (`keyvalue.get` of `probe/keyvalue.get`).
    pub fn local<'a>(&self, reported: &'a str) -> &'a str {
        match &self.name {
            Some(name) => reported
                .strip_prefix(name.as_str())
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(reported),
            None => reported,
        }
    }

    /// When its measurement starts, since the run's measurement started.
    pub fn shift(&self, layout: &Layout) -> Duration {
        (self.start + self.warmup).saturating_sub(layout.measure_from())
    }
}

/// The parts of a run and the ranges of their operations.
#[derive(Debug, Clone)]
pub struct Layout {
    pub spans: Vec<Span>,
}

impl Layout {
    /// When the first part's measurement starts, since the run started.
    pub fn measure_from(&self) -> Duration {
        self.spans.iter().map(|s| s.start + s.warmup).min().unwrap_or_default()
    }

    /// When the last part ends, since the run started.
    pub fn end(&self) -> Duration {
        self.spans
            .iter()
            .map(|s| s.start + s.duration)
            .max()
            .unwrap_or_default()
    }

    /// The part whose operations include index `op`.
    pub fn part_of(&self, op: usize) -> usize {
        self.spans.iter().position(|s| s.ops.contains(&op)).unwrap_or(0)
    }

    pub fn is_multi(&self) -> bool {
        self.spans.iter().any(|s| s.name.is_some())
    }

    pub fn names(&self) -> Vec<String> {
        self.spans.iter().filter_map(|s| s.name.clone()).collect()
    }
}

impl Scenario {
    /// Whether the file has several scenarios (`scenarios:`).
    pub fn is_multi(&self) -> bool {
        !self.scenarios.is_empty()
    }

    /// What runs: this scenario, or each of `scenarios` as a scenario of its own that
    /// shares the target, keyspaces and descriptors (and is seeded apart).
    pub fn parts(&self) -> Vec<RunPart> {
        if !self.is_multi() {
            return vec![RunPart {
                name: None,
                start: Duration::ZERO,
                scenario: self.clone(),
            }];
        }
        self.scenarios
            .iter()
            .enumerate()
            .map(|(i, (name, part))| RunPart {
                name: Some(name.clone()),
                start: part.start,
                scenario: Scenario {
                    name: format!("{}/{name}", self.name),
                    seed: self.seed ^ (i as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03),
                    target: self.target.clone(),
                    load: part.load.clone(),
                    keyspaces: self.keyspaces.clone(),
                    operations: part.operations.clone(),
                    scenarios: BTreeMap::new(),
                    thresholds: Vec::new(),
                    trace_sample: self.trace_sample.clone(),
                    grpc: self.grpc.clone(),
                },
            })
            .collect()
    }

    /// Each part as written, borrowed: the file's own `load` and `operations`, or each of
    /// `scenarios` (in name order, as [`Scenario::parts`]).
    pub(crate) fn part_refs(&self) -> Vec<PartRef<'_>> {
        if !self.is_multi() {
            return vec![PartRef {
                name: None,
                start: Duration::ZERO,
                load: &self.load,
                operations: &self.operations,
            }];
        }
        self.scenarios
            .iter()
            .map(|(name, part)| PartRef {
                name: Some(name),
                start: part.start,
                load: &part.load,
                operations: &part.operations,
            })
            .collect()
    }

    /// Where each part's operations are among [`Scenario::reported_operations`].
    pub fn layout(&self) -> Layout {
        let mut next = 0;
        let spans = self
            .part_refs()
            .into_iter()
            .map(|p| {
                let n = super::reported_names(p.operations).len();
                let span = Span {
                    name: p.name.map(str::to_string),
                    ops: next..next + n,
                    start: p.start,
                    warmup: p.load.warmup(),
                    duration: p.load.duration(),
                    open: matches!(p.load, Load::Open { .. }),
                };
                next += n;
                span
            })
            .collect();
        Layout { spans }
    }

    /// The operation lists of the file, each with its field path's prefix.
    pub(super) fn operation_lists_mut(&mut self) -> Vec<(String, &mut Vec<Operation>)> {
        if !self.is_multi() {
            return vec![("operations".to_string(), &mut self.operations)];
        }
        self.scenarios
            .iter_mut()
            .map(|(name, part)| (format!("scenarios.{name}.operations"), &mut part.operations))
            .collect()
    }
}

/// A name usable in `<scenario>/<operation>` and in a threshold's `in <scenario>`.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}
