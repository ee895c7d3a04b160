//! `loadtest merge`: combines the runs of N shards into one report. Histograms are read
//! back from each run's HdrHistogram log and added, so merged percentiles are exactly
//! those of one histogram holding every sample.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

use crate::report::{FAILED_SUFFIX, RunReport, SEND_LAG_TAG, SERVICE_SUFFIX, STOPPED_EARLY};
use crate::stats::{Second, Stats};

/// Every histogram of an HdrHistogram log, by tag (untagged ones under "").
pub fn read_log(path: &Path) -> anyhow::Result<BTreeMap<String, Histogram<u64>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| anyhow::anyhow!("{}: not an HdrHistogram log: {e:?}", path.display()))?;
        let LogEntry::Interval(interval) = entry else { continue };
        let tag = interval.tag().map(|t| t.as_str().to_string()).unwrap_or_default();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .with_context(|| format!("{}: bad base64 in interval {tag:?}", path.display()))?;
        let h: Histogram<u64> = deserializer
            .deserialize(&mut Cursor::new(raw))
            .map_err(|e| anyhow::anyhow!("{}: cannot decode interval {tag:?}: {e:?}", path.display()))?;
        match out.get_mut(&tag) {
            Some(existing) => existing.add(&h).map_err(|e| anyhow::anyhow!("{e:?}"))?,
            None => {
                out.insert(tag, h);
            }
        }
    }
    Ok(out)
}

/// Merges shard runs (paths to their run.json; the log beside each is read too).
pub fn merge(runs: &[PathBuf]) -> anyhow::Result<(RunReport, Stats, Vec<String>)> {
    ensure!(!runs.is_empty(), "nothing to merge");
    let mut reports = Vec::new();
    for path in runs {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let report: RunReport = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a run.json written by loadtest", path.display()))?;
        reports.push((path.clone(), report));
    }
    let first = &reports[0].1;
    let op_names: Vec<String> = first.operations.iter().map(|o| o.operation.clone()).collect();
    let mut shards_seen = Vec::new();
    for (path, r) in &reports {
        ensure!(
            r.scenario.name == first.scenario.name && r.operations.iter().map(|o| &o.operation).eq(op_names.iter()),
            "{}: scenario {:?} with other operations; only shards of one scenario can be merged",
            path.display(),
            r.scenario.name
        );
        if let Some(shard) = r.shard {
            if shards_seen.contains(&shard.index) {
                bail!("{}: shard {} appears twice", path.display(), shard.index);
            }
            shards_seen.push(shard.index);
        }
    }
    let mut stats = Stats::new(op_names.len());
    for (path, r) in &reports {
        let log = read_log(&path.with_file_name("latency.hlog"))?;
        let add = |into: &mut Histogram<u64>, tag: &str| -> anyhow::Result<()> {
            let h = log
                .get(tag)
                .ok_or_else(|| anyhow::anyhow!("{}: no interval tagged {tag:?}", path.display()))?;
            into.add(h).map_err(|e| anyhow::anyhow!("{e:?}"))
        };
        for (i, name) in op_names.iter().enumerate() {
            add(&mut stats.ops[i].corrected, name)?;
            add(&mut stats.ops[i].service, &format!("{name}{SERVICE_SUFFIX}"))?;
            // Logs written before failed responses were kept apart have no such interval.
            if let Some(h) = log.get(&format!("{name}{FAILED_SUFFIX}")) {
                stats.ops[i].failed.add(h).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            }
            for (code, n) in &r.operations[i].codes {
                *stats.ops[i].codes.entry(code.clone()).or_default() += n;
            }
            // Shards run at once: their peaks added are an upper bound of the whole's.
            stats.open_streams[i].1 += r.operations[i].streams_open_peak.unwrap_or(0);
        }
        add(&mut stats.send_lag, SEND_LAG_TAG)?;
        stats.scheduled += r.scheduled;
        stats.dropped += r.dropped;
        for s in &r.time_series {
            while stats.seconds.len() as u64 <= s.second {
                let n = stats.seconds.len() as u64;
                stats.seconds.push(Second {
                    second: n,
                    ..Second::default()
                });
            }
            let m = &mut stats.seconds[s.second as usize];
            m.target += s.target;
            m.completed += s.completed;
            m.errors += s.errors;
            for (code, n) in &s.error_codes {
                *m.error_codes.entry(code.clone()).or_default() += n;
            }
            m.dropped += s.dropped;
            m.scenarios
                .resize(s.scenarios.len().max(m.scenarios.len()), Default::default());
            for (into, p) in m.scenarios.iter_mut().zip(&s.scenarios) {
                into.target += p.target;
                into.completed += p.completed;
                into.errors += p.errors;
                into.dropped += p.dropped;
            }
            // Per-second percentiles cannot be merged from summaries: keep the worst shard's.
            m.p50_us = m.p50_us.max(s.p50_us);
            m.p99_us = m.p99_us.max(s.p99_us);
            m.max_us = m.max_us.max(s.max_us);
            m.op_p99_us.resize(s.op_p99_us.len().max(m.op_p99_us.len()), 0);
            for (into, v) in m.op_p99_us.iter_mut().zip(&s.op_p99_us) {
                *into = (*into).max(*v);
            }
        }
    }
    let started = reports.iter().map(|(_, r)| r.started_unix_ms).min().unwrap_or(0);
    let target = format!("{} (merged from {} runs)", first.target, reports.len());
    let mut merged = RunReport::build(&first.scenario, None, target, &op_names, &stats, started, None);
    merged.merged_runs = reports.len() as u32;
    merge_window_verdicts(&mut merged, &reports);
    merged.scenario_file = first.scenario_file.clone();
    // A shard stopped by `abort_on_fail` fails the merged run too.
    for (path, r) in &reports {
        for why in r.failures.iter().filter(|f| f.starts_with(STOPPED_EARLY)) {
            merged.stopped_early(format!("{}: {why}", path.display()));
        }
    }
    Ok((merged, stats, op_names))
}

/// An `over` rule needs each second's histograms, which a run.json does not keep: the
/// merged verdict takes the worst shard's worst window. For `<` rules that is an upper
/// bound of the merged windows' values (a quantile, maximum, mean or error rate of a
/// union is at most the largest of its parts'), so a merged pass is a true pass.
fn merge_window_verdicts(merged: &mut RunReport, reports: &[(PathBuf, RunReport)]) {
    for v in &mut merged.thresholds {
        let Ok(t) = v.threshold.parse::<crate::threshold::Threshold>() else {
            continue;
        };
        if t.window.is_none() {
            continue;
        }
        let shards: Vec<&crate::report::Verdict> = reports
            .iter()
            .filter_map(|(_, r)| r.thresholds.iter().find(|s| s.threshold == v.threshold))
            .collect();
        let worst = shards.iter().filter(|s| s.window_end_s.is_some()).max_by(|a, b| {
            let order = a.actual.total_cmp(&b.actual);
            if t.higher_is_worse() { order } else { order.reverse() }
        });
        if let Some(w) = worst {
            v.actual = w.actual;
            v.window_end_s = w.window_end_s;
            v.passed = shards.iter().all(|s| s.passed) && t.holds(w.actual);
        }
    }
    merged.passed = merged.failures.is_empty() && merged.thresholds.iter().all(|v| v.passed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn write_log(path: &Path, tag: &str, h: &Histogram<u64>) {
        use hdrhistogram::serialization::V2DeflateSerializer;
        use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
        let mut file = std::fs::File::create(path).unwrap();
        let mut serializer = V2DeflateSerializer::new();
        let mut writer = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut file, &mut serializer)
            .unwrap();
        writer
            .write_histogram(
                h,
                std::time::Duration::ZERO,
                std::time::Duration::from_secs(1),
                Tag::new(tag),
            )
            .unwrap();
    }

    #[test]
    fn merged_shard_logs_equal_one_histogram_of_all_samples() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut all = crate::stats::histogram();
        let mut merged = crate::stats::histogram();
        for shard in 0..4 {
            let mut h = crate::stats::histogram();
            for _ in 0..50_000 {
                // Log-uniform from 10 us to 10 s, like real latencies.
                let v = 10f64.powf(rng.random_range(1.0..7.0)) as u64;
                h.record(v).unwrap();
                all.record(v).unwrap();
            }
            let path = dir.path().join(format!("{shard}.hlog"));
            write_log(&path, "keyvalue.get", &h);
            merged.add(&read_log(&path).unwrap()["keyvalue.get"]).unwrap();
        }
        assert_eq!(merged.len(), all.len());
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999, 1.0] {
            assert_eq!(merged.value_at_quantile(q), all.value_at_quantile(q), "quantile {q}");
        }
        assert_eq!(merged.max(), all.max());
        assert_eq!(merged.min(), all.min());
    }
}
