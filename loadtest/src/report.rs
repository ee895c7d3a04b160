//! Run results for people (terminal table) and machines (`run.json`, HdrHistogram log),
//! and the threshold verdicts that decide the exit code.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::scenario::{Load, Scenario};
use crate::shard::Shard;
use crate::stats::{Second, Stats};
use crate::threshold::{Metric, Threshold};

/// How the failure of a run stopped by an `abort_on_fail` threshold begins.
pub const STOPPED_EARLY: &str = "stopped early";

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p99_9_us: u64,
    pub max_us: u64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            count: h.len(),
            mean_us: if h.is_empty() { 0.0 } else { h.mean() },
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p99_9_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct OpReport {
    pub operation: String,
    pub count: u64,
    pub errors: u64,
    pub rate_per_s: f64,
    pub codes: std::collections::BTreeMap<String, u64>,
    /// Of the successful responses, corrected for coordinated omission (what users saw).
    pub latency: Percentiles,
    /// Of the successful responses, uncorrected service time.
    pub service_time: Percentiles,
    /// Of the failed responses, corrected: apart, so errors do not move the percentiles.
    #[serde(default)]
    pub failed_latency: Percentiles,
    /// (percentile, corrected latency in us) from the histogram: from 0 to 99.999% in
    /// tenths of a "nine", then the max.
    pub distribution: Vec<(f64, u64)>,
    /// The same for the uncorrected service time.
    #[serde(default)]
    pub service_distribution: Vec<(f64, u64)>,
}

/// The percentile curve of `h`: at 1 - 10^-(k/10) for k = 0..=50 (0% to 99.999%, ten
/// points per nine), then 100% (the max); empty for an empty histogram.
fn distribution(h: &Histogram<u64>) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    (0..=50)
        .map(|k| 100.0 * (1.0 - 10f64.powf(-f64::from(k) / 10.0)))
        .map(|p| (p, h.value_at_quantile(p / 100.0)))
        .chain(std::iter::once((100.0, h.max())))
        .collect()
}

/// One stage of the load as it ran.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct StageSummary {
    pub stage: usize,
    /// What the stage offered: `500 req/s`, `100 -> 500 req/s`, `8 clients`.
    pub offered: String,
    /// Its measured seconds (without warm-up).
    pub measured_s: f64,
    pub scheduled: u64,
    pub completed: u64,
    pub rate_per_s: f64,
    pub errors: u64,
    pub dropped: u64,
    /// The highest p99 of any one second of the stage.
    pub worst_p99_us: u64,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Verdict {
    pub threshold: String,
    pub actual: f64,
    pub unit: String,
    pub passed: bool,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub os: String,
    pub arch: String,
    pub loadtest_version: String,
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunReport {
    pub scenario: Scenario,
    /// The scenario file the run was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_file: Option<String>,
    /// Which shard of the scenario this run was (`--shard`); absent for a whole run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// How many shard runs were merged into this report (1 for a plain run).
    #[serde(default = "one")]
    pub merged_runs: u32,
    pub target: String,
    pub machine: Machine,
    pub started_unix_ms: u64,
    /// Measured time (warm-up excluded), seconds.
    pub measured_s: f64,
    pub operations: Vec<OpReport>,
    pub total: OpReport,
    pub scheduled: u64,
    pub dropped: u64,
    /// Completed / scheduled (open model); absent for the closed model, and when nothing
    /// was scheduled.
    #[serde(default)]
    pub achieved_rate: Option<f64>,
    /// Actual minus intended send time (open model): the generator's own lag.
    pub send_lag: Percentiles,
    pub time_series: Vec<Second>,
    /// Each stage as it ran (rates, errors, worst second's p99), from the time series.
    #[serde(default)]
    pub stages: Vec<StageSummary>,
    pub thresholds: Vec<Verdict>,
    /// Why the run failed besides its thresholds: it measured nothing, or every request
    /// failed. A run that fails this way never passes, with or without thresholds.
    #[serde(default)]
    pub failures: Vec<String>,
    /// The generator's own lateness is a large part of the measured latency: the
    /// percentiles hold the generator's delay as well as the target's.
    #[serde(default)]
    pub lag_unreliable: bool,
    pub passed: bool,
    pub warnings: Vec<String>,
}

impl OpReport {
    /// The status codes of the failed requests of this operation, most frequent first:
    /// `UNIMPLEMENTED 300 (100.0%)`.
    pub fn error_codes(&self) -> String {
        let mut failed: Vec<(&String, &u64)> = self.codes.iter().filter(|(code, _)| *code != "OK").collect();
        failed.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        failed
            .iter()
            .map(|(code, n)| format!("{code} {n} ({:.1}%)", **n as f64 * 100.0 / self.count.max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The summary columns: operation, count, rate/s, p50, p90, p99, p99.9, max, errors.
    pub fn cells(&self) -> [String; 9] {
        let l = &self.latency;
        [
            self.operation.clone(),
            self.count.to_string(),
            format!("{:.1}", self.rate_per_s),
            fmt_us(l.p50_us as f64),
            fmt_us(l.p90_us as f64),
            fmt_us(l.p99_us as f64),
            fmt_us(l.p99_9_us as f64),
            fmt_us(l.max_us as f64),
            self.errors.to_string(),
        ]
    }
}

impl Verdict {
    pub fn verdict(&self) -> &'static str {
        if self.passed { "PASS" } else { "FAIL" }
    }

    /// The measured value in the threshold's unit.
    pub fn actual_text(&self) -> String {
        if self.unit == "us" {
            fmt_us(self.actual)
        } else {
            format!("{:.3}%", self.actual * 100.0)
        }
    }
}

fn one() -> u32 {
    1
}

impl RunReport {
    pub fn build(
        scenario: &Scenario,
        shard: Option<Shard>,
        target: String,
        op_names: &[String],
        stats: &Stats,
        started_unix_ms: u64,
        stopped: Option<std::time::Duration>,
    ) -> RunReport {
        // Measured time: the scenario's, or until the run was stopped.
        let measured = stopped
            .unwrap_or_else(|| scenario.duration().saturating_sub(scenario.warmup()))
            .as_secs_f64()
            .max(1e-9);
        let op_report = |name: String,
                         latency: &Histogram<u64>,
                         service: &Histogram<u64>,
                         failed: &Histogram<u64>,
                         codes: std::collections::BTreeMap<String, u64>| {
            let count: u64 = codes.values().sum();
            let errors = crate::stats::error_count(&codes);
            OpReport {
                operation: name,
                count,
                errors,
                rate_per_s: count as f64 / measured,
                codes,
                latency: Percentiles::of(latency),
                service_time: Percentiles::of(service),
                failed_latency: Percentiles::of(failed),
                distribution: distribution(latency),
                service_distribution: distribution(service),
            }
        };
        let operations: Vec<OpReport> = op_names
            .iter()
            .zip(&stats.ops)
            .map(|(name, o)| op_report(name.clone(), &o.corrected, &o.service, &o.failed, o.codes.clone()))
            .collect();
        let (mut all, mut all_service, mut all_failed, mut codes) = (
            crate::stats::histogram(),
            crate::stats::histogram(),
            crate::stats::histogram(),
            std::collections::BTreeMap::new(),
        );
        // "all" counts requests sent; deliveries and stream messages are reported on their own.
        for (name, o) in op_names.iter().zip(&stats.ops) {
            if crate::scenario::is_synthetic(name) {
                continue;
            }
            let _ = all.add(&o.corrected);
            let _ = all_service.add(&o.service);
            let _ = all_failed.add(&o.failed);
            for (c, n) in &o.codes {
                *codes.entry(c.clone()).or_insert(0) += n;
            }
        }
        let total = op_report("all".into(), &all, &all_service, &all_failed, codes);
        let achieved_rate = match scenario.load {
            Load::Open { .. } if stats.scheduled > 0 => Some(total.count as f64 / stats.scheduled as f64),
            _ => None,
        };
        let send_lag = Percentiles::of(&stats.send_lag);
        let mut warnings = Vec::new();
        let lag_unreliable = lag_warnings(scenario, &send_lag, &total.latency, &mut warnings);
        if stats.dropped > 0 {
            warnings.push(format!(
                "{} arrivals were dropped at max_in_flight: the target did not keep up with the offered rate",
                stats.dropped
            ));
        }
        let thresholds: Vec<Verdict> = scenario
            .thresholds
            .iter()
            .filter_map(|t| t.parse::<Threshold>().ok())
            .map(|t| {
                let (latency, op) = match &t.operation {
                    Some(name) => match op_names.iter().position(|n| n == name) {
                        Some(i) => (&stats.ops[i].corrected, operations.get(i)),
                        None => (&all, None),
                    },
                    None => (&all, Some(&total)),
                };
                let (actual, unit) = match t.metric {
                    Metric::Percentile(q) => (latency.value_at_quantile(q / 100.0) as f64, "us"),
                    Metric::Max => (latency.max() as f64, "us"),
                    Metric::Mean => (if latency.is_empty() { 0.0 } else { latency.mean() }, "us"),
                    Metric::ErrorRate => (
                        op.map_or(1.0, |o| {
                            if o.count == 0 {
                                0.0
                            } else {
                                o.errors as f64 / o.count as f64
                            }
                        }),
                        "ratio",
                    ),
                    // Validation keeps this for the open model; nothing scheduled achieves nothing.
                    Metric::AchievedRate => (achieved_rate.unwrap_or(0.0), "ratio"),
                };
                // A threshold on an operation that never ran cannot pass.
                let ran = t.operation.as_ref().is_none_or(|_| op.is_some_and(|o| o.count > 0));
                Verdict {
                    passed: ran && t.holds(actual),
                    threshold: t.text,
                    actual,
                    unit: unit.into(),
                }
            })
            .collect();
        let failures = failures(scenario, &total);
        let passed = failures.is_empty() && thresholds.iter().all(|v| v.passed);
        let mut report = RunReport {
            scenario: scenario.clone(),
            scenario_file: None,
            shard,
            merged_runs: 1,
            target,
            machine: Machine {
                cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
                os: std::env::consts::OS.into(),
                arch: std::env::consts::ARCH.into(),
                loadtest_version: env!("CARGO_PKG_VERSION").into(),
            },
            started_unix_ms,
            measured_s: measured,
            operations,
            total,
            scheduled: stats.scheduled,
            dropped: stats.dropped,
            achieved_rate,
            send_lag,
            time_series: {
                // The clock may close one more (empty) second after the last arrival.
                let mut series = stats.seconds.clone();
                while series.last().is_some_and(|s| s.target == 0 && s.completed == 0) {
                    series.pop();
                }
                series
            },
            stages: Vec::new(),
            thresholds,
            failures,
            lag_unreliable,
            passed,
            warnings,
        };
        report.stages = report.stage_summaries();
        report
    }

    /// The verdict line: PASSED, or FAILED with every reason.
    pub fn verdict_line(&self) -> String {
        if self.passed {
            return "PASSED".into();
        }
        let mut reasons = self.failures.clone();
        let failed = self.thresholds.iter().filter(|v| !v.passed).count();
        if failed > 0 {
            reasons.push(format!("{failed} threshold(s) not met"));
        }
        format!("FAILED: {}", reasons.join("; "))
    }

    /// One row per stage of the load, from the per-second series (warm-up left out).
    /// Marks the run as stopped early for `why` (which starts with [`STOPPED_EARLY`]): it
    /// fails, whatever its thresholds say.
    pub fn stopped_early(&mut self, why: String) {
        self.failures.push(why);
        self.passed = false;
    }

    /// With `stages` filled in from the time series if it is empty (a run.json written
    /// before loadtest kept them).
    pub fn with_stages(mut self) -> RunReport {
        if self.stages.is_empty() {
            self.stages = self.stage_summaries();
        }
        self
    }

    fn stage_summaries(&self) -> Vec<StageSummary> {
        let warmup = self.scenario.warmup().as_secs_f64();
        let mut start = 0.0;
        let mut out = Vec::new();
        for (i, (duration, offered)) in self.scenario.load.stages().into_iter().enumerate() {
            let end = start + duration.as_secs_f64();
            let (from, to) = (start - warmup, end - warmup);
            start = end;
            if to <= 0.0 {
                continue;
            }
            let seconds: Vec<&Second> = self
                .time_series
                .iter()
                .filter(|s| (s.second as f64) >= from.floor() && (s.second as f64) < to)
                .collect();
            let measured = to - from.max(0.0);
            let completed: u64 = seconds.iter().map(|s| s.completed).sum();
            out.push(StageSummary {
                stage: i,
                offered,
                measured_s: measured,
                scheduled: seconds.iter().map(|s| s.target).sum(),
                completed,
                rate_per_s: completed as f64 / measured.max(1e-9),
                errors: seconds.iter().map(|s| s.errors).sum(),
                dropped: seconds.iter().map(|s| s.dropped).sum(),
                worst_p99_us: seconds.iter().map(|s| s.p99_us).max().unwrap_or(0),
            });
        }
        out
    }

    /// Each operation, then the total: the rows of every summary table.
    pub fn rows(&self) -> impl Iterator<Item = &OpReport> {
        self.operations.iter().chain(std::iter::once(&self.total))
    }

    /// The terminal summary.
    pub fn table(&self) -> String {
        let mut out = String::new();
        // As wide as the longest name: gRPC methods and HTTP paths make long ones.
        let w = self.rows().map(|o| o.operation.len()).max().unwrap_or(0).max(20);
        let _ = writeln!(
            out,
            "\n{:<w$} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "operation", "count", "rate/s", "p50", "p90", "p99", "p99.9", "max", "errors"
        );
        for o in self.rows() {
            let [op, count, rate, p50, p90, p99, p999, max, errors] = o.cells();
            let _ = writeln!(
                out,
                "{op:<w$} {count:>9} {rate:>10} {p50:>9} {p90:>9} {p99:>9} {p999:>9} {max:>9} {errors:>7}"
            );
        }
        for o in &self.operations {
            let Some(messages) = self
                .operations
                .iter()
                .find(|m| m.operation == format!("{}{}", o.operation, crate::scenario::MESSAGE))
            else {
                continue;
            };
            let _ = writeln!(
                out,
                "{}: {} streams, {:.2} messages each on average",
                o.operation,
                o.count,
                messages.count as f64 / o.count.max(1) as f64
            );
        }
        if self.stages.len() > 1 {
            let _ = writeln!(
                out,
                "\n{:<6} {:<24} {:>9} {:>10} {:>8} {:>8} {:>11}",
                "stage", "offered", "completed", "rate/s", "errors", "dropped", "worst p99"
            );
            for st in &self.stages {
                let _ = writeln!(
                    out,
                    "{:<6} {:<24} {:>9} {:>10.1} {:>8} {:>8} {:>11}",
                    st.stage,
                    st.offered,
                    st.completed,
                    st.rate_per_s,
                    st.errors,
                    st.dropped,
                    fmt_us(st.worst_p99_us as f64)
                );
            }
        }
        let _ = writeln!(
            out,
            "latency is corrected for coordinated omission; uncorrected service time p99 {}; send lag p50 {} p99 {}",
            fmt_us(self.total.service_time.p99_us as f64),
            fmt_us(self.send_lag.p50_us as f64),
            fmt_us(self.send_lag.p99_us as f64)
        );
        if let Some(achieved) = self.achieved_rate {
            let _ = writeln!(
                out,
                "achieved {:.1}% of the scheduled arrivals ({} scheduled, {} dropped)",
                achieved * 100.0,
                self.scheduled,
                self.dropped
            );
        }
        for o in self.operations.iter().filter(|o| o.errors > 0) {
            let _ = writeln!(
                out,
                "errors of {}: {}; their latency p50 {} p99 {} (kept out of the percentiles above)",
                o.operation,
                o.error_codes(),
                fmt_us(o.failed_latency.p50_us as f64),
                fmt_us(o.failed_latency.p99_us as f64)
            );
        }
        for f in &self.failures {
            let _ = writeln!(out, "failed: {f}");
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        for v in &self.thresholds {
            let _ = writeln!(
                out,
                "threshold {:<40} {} (actual {})",
                v.threshold,
                v.verdict(),
                v.actual_text()
            );
        }
        out
    }

    pub fn write(&self, dir: &Path, stats: &Stats, op_names: &[String]) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("run.json"), serde_json::to_vec_pretty(self)?)?;
        std::fs::write(dir.join("report.html"), crate::html::render(self))?;
        write_histogram_log(&dir.join("latency.hlog"), stats, op_names, self)?;
        crate::export::write(self, dir)?;
        Ok(())
    }
}

/// Send lag past the time between arrivals means sends bunch up: the generator is at its
/// limit;
/// send lag above a tenth of the latency p99 means the percentiles are partly the
/// generator's. Both are relative, so a slow rate is not told to go slower and a busy
/// machine shows in the report instead of in inflated numbers. Returns the second.
fn lag_warnings(scenario: &Scenario, lag: &Percentiles, latency: &Percentiles, warnings: &mut Vec<String>) -> bool {
    let Load::Open { stages, .. } = &scenario.load else {
        return false;
    };
    let peak = stages
        .iter()
        .flat_map(|s| [s.rate, s.ramp_to.unwrap_or(s.rate)])
        .fold(0.0, f64::max);
    let gap_us = if peak > 0.0 { 1e6 / peak } else { f64::INFINITY };
    let lag_p99 = lag.p99_us as f64;
    if lag_p99 > gap_us {
        warnings.push(format!(
            "the generator sent late (send lag p99 {}, more than the {} between arrivals at the peak rate): \
             it is at its own limit; lower the rate or scale out with --shard",
            fmt_us(lag_p99),
            fmt_us(gap_us)
        ));
    }
    let unreliable = lag.count > 0 && lag_p99 > latency.p99_us as f64 / 10.0 && lag_p99 >= 100.0;
    if unreliable {
        warnings.push(format!(
            "the generator's own lateness (send lag p99 {}) is over a tenth of the latency p99 ({}): \
             the percentiles hold the generator's delay too (a busy machine?); do not read them as the target's alone",
            fmt_us(lag_p99),
            fmt_us(latency.p99_us as f64)
        ));
    }
    unreliable
}

/// Why a run with these totals cannot pass, whatever its thresholds say.
fn failures(scenario: &Scenario, total: &OpReport) -> Vec<String> {
    if total.count == 0 {
        return vec![format!(
            "no request completed in the measured time ({:?} after {:?} of warm-up)",
            scenario.duration().saturating_sub(scenario.warmup()),
            scenario.warmup()
        )];
    }
    if total.errors == total.count {
        return vec![format!("every request failed: {}", total.error_codes())];
    }
    Vec::new()
}

/// Tag suffix of an operation's uncorrected service-time histogram in the log.
pub const SERVICE_SUFFIX: &str = "#service";
/// Tag suffix of an operation's failed-response histogram in the log.
pub const FAILED_SUFFIX: &str = "#failed";
/// Tag of the generator's send-lag histogram in the log.
pub const SEND_LAG_TAG: &str = "#send_lag";

/// One interval per operation (tagged with its name) covering the measured time, in the
/// standard HdrHistogram log format that HdrHistogram's tools and `loadtest merge` read.
fn write_histogram_log(path: &Path, stats: &Stats, op_names: &[String], report: &RunReport) -> anyhow::Result<()> {
    use hdrhistogram::serialization::V2DeflateSerializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut serializer = V2DeflateSerializer::new();
    let start = std::time::UNIX_EPOCH + Duration::from_millis(report.started_unix_ms);
    let mut writer = IntervalLogWriterBuilder::new()
        .add_comment("prism loadtest: latency in microseconds; tag <op> corrected, <op>#service uncorrected (both of OK responses), <op>#failed failed responses corrected, #send_lag generator lag")
        .with_start_time(start)
        .with_max_value_divisor(1.0)
        .begin_log_with(&mut file, &mut serializer)?;
    let span = Duration::from_secs_f64(report.measured_s);
    for (name, o) in op_names.iter().zip(&stats.ops) {
        writer.write_histogram(&o.corrected, Duration::ZERO, span, Tag::new(name))?;
        writer.write_histogram(
            &o.service,
            Duration::ZERO,
            span,
            Tag::new(&format!("{name}{SERVICE_SUFFIX}")),
        )?;
        writer.write_histogram(
            &o.failed,
            Duration::ZERO,
            span,
            Tag::new(&format!("{name}{FAILED_SUFFIX}")),
        )?;
    }
    writer.write_histogram(&stats.send_lag, Duration::ZERO, span, Tag::new(SEND_LAG_TAG))?;
    Ok(())
}

pub fn fmt_us(us: f64) -> String {
    if us >= 1_000_000.0 {
        format!("{:.2}s", us / 1_000_000.0)
    } else if us >= 1_000.0 {
        format!("{:.2}ms", us / 1_000.0)
    } else {
        format!("{us:.0}us")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn percentiles(p99_us: u64) -> Percentiles {
        Percentiles {
            count: 100,
            mean_us: p99_us as f64,
            p50_us: p99_us,
            p90_us: p99_us,
            p99_us,
            p99_9_us: p99_us,
            max_us: p99_us,
        }
    }

    fn open_at(rate: f64) -> Scenario {
        let yaml = format!(
            "name: t\nload: {{model: open, stages: [{{duration: 1s, rate: {rate}}}]}}\n\
             keyspaces: {{k: {{count: 1}}}}\noperations:\n  - {{op: keyvalue.get, keys: k}}\n"
        );
        serde_yaml::from_str(&yaml).expect("scenario")
    }

    /// The generator is "at its limit" relative to the time between arrivals, not past a
    /// fixed 1 ms: 2 ms of lag at 20 req/s (50 ms apart) is fine, at 10,000/s it is not.
    /// The percentiles are flagged when the lag is over a tenth of the latency p99.
    #[test]
    fn send_lag_is_judged_against_the_arrival_gap_and_the_latency() {
        let mut warnings = Vec::new();
        let unreliable = lag_warnings(
            &open_at(20.0),
            &percentiles(2_000),
            &percentiles(100_000),
            &mut warnings,
        );
        assert!(warnings.is_empty() && !unreliable, "{warnings:?}");
        lag_warnings(
            &open_at(10_000.0),
            &percentiles(2_000),
            &percentiles(100_000),
            &mut warnings,
        );
        assert!(warnings.iter().any(|w| w.contains("at its own limit")), "{warnings:?}");
        let mut warnings = Vec::new();
        let unreliable = lag_warnings(&open_at(20.0), &percentiles(2_000), &percentiles(5_000), &mut warnings);
        assert!(
            unreliable && warnings.iter().any(|w| w.contains("over a tenth")),
            "{warnings:?}"
        );
    }
}
