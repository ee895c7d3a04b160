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
    /// `grpc.server_stream`: the most streams open at once (merged shards: the sum of
    /// theirs, an upper bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams_open_peak: Option<u64>,
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
    /// The value judged: of the whole run, or of the worst window of an `over` rule.
    pub actual: f64,
    pub unit: String,
    pub passed: bool,
    /// `over` rules: the measured second the worst window ended at; absent while no
    /// window with responses was full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end_s: Option<u64>,
}

/// One of several scenarios of a run, as it ran.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ScenarioSummary {
    pub name: String,
    /// `open` or `closed`.
    pub model: String,
    /// When it started, after the run started.
    pub start_s: f64,
    /// When its measurement started, after the run's measurement started.
    pub measured_from_s: f64,
    pub measured_s: f64,
    /// Its operations together, named `<scenario>/all`.
    pub total: OpReport,
    pub scheduled: u64,
    pub dropped: u64,
    /// Completed / scheduled (open model).
    #[serde(default)]
    pub achieved_rate: Option<f64>,
    pub stages: Vec<StageSummary>,
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
    /// This run's id, also on its live metrics (`loadtest.run_id`).
    #[serde(default)]
    pub run_id: String,
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
    /// Each stage as it ran (rates, errors, worst second's p99), from the time series;
    /// with several scenarios, under each of `scenarios` instead.
    #[serde(default)]
    pub stages: Vec<StageSummary>,
    /// With several scenarios: each one's results (its operations are in `operations`,
    /// named `<scenario>/<operation>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<ScenarioSummary>,
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

    /// Where the worst window of an `over` rule was: `, worst window ended at 12 s`.
    pub fn window_text(&self) -> String {
        match self.window_end_s {
            Some(end) => format!(", worst window ending at {end} s"),
            None if self.threshold.contains(" over ") => ", no full window with responses".to_string(),
            None => String::new(),
        }
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
        let layout = scenario.layout();
        let operations: Vec<OpReport> = op_names
            .iter()
            .zip(&stats.ops)
            .enumerate()
            .map(|(i, (name, o))| {
                // Several scenarios: an operation's rate is over its own scenario's time.
                let own = match layout.is_multi() {
                    true => own_measured(&layout, layout.part_of(i), stopped),
                    false => measured,
                };
                let mut report = op_report(name.clone(), own, &o.corrected, &o.service, &o.failed, o.codes.clone());
                report.streams_open_peak = stats.open_streams.get(i).map(|s| s.1).filter(|peak| *peak > 0);
                report
            })
            .collect();
        // "all" counts requests sent; deliveries and stream messages are reported on their own.
        let all_ops: Vec<usize> = (0..op_names.len())
            .filter(|&i| !crate::scenario::is_synthetic(&op_names[i]))
            .collect();
        let total = merged_report("all".into(), measured, stats, &all_ops);
        let scenarios = scenario_summaries(&layout, op_names, stats, stopped);
        let achieved_rate = match &scenario.load {
            Load::Open { .. } if stats.scheduled > 0 => Some(total.count as f64 / stats.scheduled as f64),
            _ => {
                // Several scenarios: the open ones' completions against their schedule.
                let open = scenarios.iter().filter(|s| s.model == "open");
                let (done, scheduled) = open.fold((0, 0), |(d, n), s| (d + s.total.count, n + s.scheduled));
                (scheduled > 0).then(|| done as f64 / scheduled as f64)
            }
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
        let mut windows = stats.windows.iter();
        let thresholds: Vec<Verdict> = scenario
            .thresholds
            .iter()
            .filter_map(|t| t.parse::<Threshold>().ok())
            .map(|t| {
                let scope = t.scope(op_names, &layout).unwrap_or_default();
                let unit = match t.metric {
                    Metric::ErrorRate | Metric::AchievedRate => "ratio",
                    _ => "us",
                };
                if t.window.is_some() {
                    // The windows were watched in the order of the `over` rules.
                    let worst = windows.next().and_then(|w| w.worst);
                    return Verdict {
                        passed: worst.is_some_and(|(v, _)| t.holds(v)),
                        actual: worst.map_or(0.0, |(v, _)| v),
                        window_end_s: worst.map(|(_, end)| end),
                        threshold: t.text,
                        unit: unit.into(),
                    };
                }
                let (latency, count, errors) = stats.merged(scope);
                let actual = match t.metric {
                    Metric::AchievedRate => match &t.scenario {
                        Some(name) => scenarios
                            .iter()
                            .find(|s| &s.name == name)
                            .and_then(|s| s.achieved_rate)
                            .unwrap_or(0.0),
                        // Validation keeps this for the open model; nothing scheduled achieves nothing.
                        None => achieved_rate.unwrap_or(0.0),
                    },
                    metric => crate::threshold::value_of(metric, &latency, count, errors),
                };
                // A threshold on operations that never ran cannot pass.
                let ran = (t.operation.is_none() && t.scenario.is_none()) || count > 0;
                Verdict {
                    passed: ran && t.holds(actual),
                    threshold: t.text,
                    actual,
                    unit: unit.into(),
                    window_end_s: None,
                }
            })
            .collect();
        let failures = failures(scenario, &total);
        let passed = failures.is_empty() && thresholds.iter().all(|v| v.passed);
        let mut report = RunReport {
            run_id: String::new(),
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
            scenarios,
            thresholds,
            failures,
            lag_unreliable,
            passed,
            warnings,
        };
        report.stages = report.stage_summaries();
        for i in 0..report.scenarios.len() {
            report.scenarios[i].stages = report.part_stage_summaries(&layout, i);
        }
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
        if self.scenario.is_multi() {
            return Vec::new();
        }
        stage_rows(&self.scenario.load, 0.0, &self.time_series, |s| {
            (s.target, s.completed, s.errors, s.dropped, s.p99_us)
        })
    }

    /// The stages of the `i`th of several scenarios, from its share of each second; a
    /// stage's worst p99 is the worst of its operations' in any one second.
    fn part_stage_summaries(&self, layout: &crate::scenario::Layout, i: usize) -> Vec<StageSummary> {
        let (Some(span), Some(part)) = (layout.spans.get(i), self.scenario.part_refs().into_iter().nth(i)) else {
            return Vec::new();
        };
        let shift = span.shift(layout).as_secs_f64();
        stage_rows(part.load, shift, &self.time_series, |s| {
            let p = s.scenarios.get(i).cloned().unwrap_or_default();
            let p99 = s.op_p99_us.get(span.ops.clone()).and_then(|v| v.iter().max().copied());
            (p.target, p.completed, p.errors, p.dropped, p99.unwrap_or(0))
        })
    }

    /// Each operation, each scenario's total (several scenarios), then the total: the
    /// rows of every summary table.
    pub fn rows(&self) -> impl Iterator<Item = &OpReport> {
        self.operations
            .iter()
            .chain(self.scenarios.iter().map(|s| &s.total))
            .chain(std::iter::once(&self.total))
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
                "{}: {} streams, {:.2} messages each on average, at most {} open at once",
                o.operation,
                o.count,
                messages.count as f64 / o.count.max(1) as f64,
                o.streams_open_peak.unwrap_or(0)
            );
        }
        if self.stages.len() > 1 {
            stage_table(&mut out, "", &self.stages);
        }
        if !self.scenarios.is_empty() {
            let w = self.scenarios.iter().map(|s| s.name.len()).max().unwrap_or(0).max(8);
            let _ = writeln!(
                out,
                "\n{:<w$} {:<7} {:>8} {:>9} {:>9} {:>10} {:>9} {:>7} {:>9}",
                "scenario", "model", "start", "measured", "count", "rate/s", "p99", "errors", "achieved"
            );
            for sc in &self.scenarios {
                let _ = writeln!(
                    out,
                    "{:<w$} {:<7} {:>8} {:>9} {:>9} {:>10.1} {:>9} {:>7} {:>9}",
                    sc.name,
                    sc.model,
                    format!("{:.1}s", sc.start_s),
                    format!("{:.1}s", sc.measured_s),
                    sc.total.count,
                    sc.total.rate_per_s,
                    fmt_us(sc.total.latency.p99_us as f64),
                    sc.total.errors,
                    sc.achieved_rate
                        .map_or("-".to_string(), |a| format!("{:.1}%", a * 100.0))
                );
            }
            for sc in self.scenarios.iter().filter(|s| s.stages.len() > 1) {
                stage_table(&mut out, &format!("{} ", sc.name), &sc.stages);
            }
        }
        let _ = writeln!(
            out,
            "latency is corrected for coordinated omission; uncorrected service time p99 {}; send lag p50 {} p99 {}",
            fmt_us(self.total.service_time.p99_us as f64),
            fmt_us(self.send_lag.p50_us as f64),
            fmt_us(self.send_lag.p99_us as f64)
        );
        match self.achieved_rate {
            Some(achieved) if !self.scenarios.is_empty() => {
                let open = self.scenarios.iter().filter(|s| s.model == "open");
                let (scheduled, dropped) = open.fold((0, 0), |(n, d), s| (n + s.scheduled, d + s.dropped));
                let _ = writeln!(
                    out,
                    "achieved {:.1}% of the open scenarios' scheduled arrivals ({scheduled} scheduled, {dropped} dropped)",
                    achieved * 100.0,
                );
            }
            Some(achieved) => {
                let _ = writeln!(
                    out,
                    "achieved {:.1}% of the scheduled arrivals ({} scheduled, {} dropped)",
                    achieved * 100.0,
                    self.scheduled,
                    self.dropped
                );
            }
            None => {}
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
                "threshold {:<40} {} (actual {}{})",
                v.threshold,
                v.verdict(),
                v.actual_text(),
                v.window_text()
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

/// The per-stage table, headed `<label>stage`.
fn stage_table(out: &mut String, label: &str, stages: &[StageSummary]) {
    let _ = writeln!(
        out,
        "\n{label}{:<6} {:<24} {:>9} {:>10} {:>8} {:>8} {:>11}",
        "stage", "offered", "completed", "rate/s", "errors", "dropped", "worst p99"
    );
    for st in stages {
        let _ = writeln!(
            out,
            "{label}{:<6} {:<24} {:>9} {:>10.1} {:>8} {:>8} {:>11}",
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

/// Watches a window in `stats` for each `over` threshold of `scenario`, in their order:
/// [`RunReport::build`] reads their verdicts back in the same order.
pub fn watch_windows(scenario: &Scenario, op_names: &[String], layout: &crate::scenario::Layout, stats: &mut Stats) {
    for t in scenario.thresholds.iter().filter_map(|t| t.parse::<Threshold>().ok()) {
        let Some(window) = t.window else { continue };
        let ops = t.scope(op_names, layout).unwrap_or_default();
        stats.watch(crate::stats::Window::new(
            ops,
            window.as_secs(),
            t.metric,
            t.higher_is_worse(),
        ));
    }
}

/// The report of one operation (or several merged) over `measured` seconds.
fn op_report(
    name: String,
    measured: f64,
    latency: &Histogram<u64>,
    service: &Histogram<u64>,
    failed: &Histogram<u64>,
    codes: std::collections::BTreeMap<String, u64>,
) -> OpReport {
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
        streams_open_peak: None,
    }
}

/// The operations `ops` of `stats` as one: their histograms added, their codes summed.
fn merged_report(name: String, measured: f64, stats: &Stats, ops: &[usize]) -> OpReport {
    let (mut all, mut service, mut failed, mut codes) = (
        crate::stats::histogram(),
        crate::stats::histogram(),
        crate::stats::histogram(),
        std::collections::BTreeMap::new(),
    );
    for o in ops.iter().filter_map(|&i| stats.ops.get(i)) {
        let _ = all.add(&o.corrected);
        let _ = service.add(&o.service);
        let _ = failed.add(&o.failed);
        for (c, n) in &o.codes {
            *codes.entry(c.clone()).or_insert(0) += n;
        }
    }
    op_report(name, measured, &all, &service, &failed, codes)
}

/// The measured seconds of the `part`th scenario: its own, cut where the run was stopped.
fn own_measured(layout: &crate::scenario::Layout, part: usize, stopped: Option<Duration>) -> f64 {
    let Some(span) = layout.spans.get(part) else {
        return 1e-9;
    };
    let mut own = span.duration.saturating_sub(span.warmup);
    if let Some(stopped) = stopped {
        own = own.min(stopped.saturating_sub(span.shift(layout)));
    }
    own.as_secs_f64().max(1e-9)
}

/// Each of several scenarios' results (none for a run of one).
fn scenario_summaries(
    layout: &crate::scenario::Layout,
    op_names: &[String],
    stats: &Stats,
    stopped: Option<Duration>,
) -> Vec<ScenarioSummary> {
    if !layout.is_multi() {
        return Vec::new();
    }
    layout
        .spans
        .iter()
        .enumerate()
        .map(|(i, span)| {
            let name = span.name.clone().unwrap_or_default();
            let ops: Vec<usize> = span
                .ops
                .clone()
                .filter(|&o| !crate::scenario::is_synthetic(span.local(&op_names[o])))
                .collect();
            let from = span.shift(layout);
            let own = own_measured(layout, i, stopped);
            let total = merged_report(format!("{name}/all"), own, stats, &ops);
            let (scheduled, dropped) = stats
                .seconds
                .iter()
                .filter_map(|s| s.scenarios.get(i))
                .fold((0, 0), |(n, d), p| (n + p.target, d + p.dropped));
            ScenarioSummary {
                model: if span.open { "open" } else { "closed" }.into(),
                start_s: span.start.as_secs_f64(),
                measured_from_s: from.as_secs_f64(),
                measured_s: own,
                achieved_rate: (span.open && scheduled > 0).then(|| total.count as f64 / scheduled as f64),
                total,
                scheduled,
                dropped,
                stages: Vec::new(),
                name,
            }
        })
        .collect()
}

/// One row per stage of `load` (warm-up left out), from the seconds of the series
/// `offset_s` after its start; `pick` gives a second's (target, completed, errors,
/// dropped, p99).
fn stage_rows(
    load: &Load,
    offset_s: f64,
    series: &[Second],
    pick: impl Fn(&Second) -> (u64, u64, u64, u64, u64),
) -> Vec<StageSummary> {
    let warmup = load.warmup().as_secs_f64();
    let mut start = 0.0;
    let mut out = Vec::new();
    for (i, (duration, offered)) in load.stages().into_iter().enumerate() {
        let end = start + duration.as_secs_f64();
        let (from, to) = (start - warmup, end - warmup);
        start = end;
        if to <= 0.0 {
            continue;
        }
        let seconds: Vec<(u64, u64, u64, u64, u64)> = series
            .iter()
            .filter(|s| {
                let t = s.second as f64 - offset_s;
                t >= from.floor() && t < to
            })
            .map(&pick)
            .collect();
        let measured = to - from.max(0.0);
        let completed: u64 = seconds.iter().map(|s| s.1).sum();
        out.push(StageSummary {
            stage: i,
            offered,
            measured_s: measured,
            scheduled: seconds.iter().map(|s| s.0).sum(),
            completed,
            rate_per_s: completed as f64 / measured.max(1e-9),
            errors: seconds.iter().map(|s| s.2).sum(),
            dropped: seconds.iter().map(|s| s.3).sum(),
            worst_p99_us: seconds.iter().map(|s| s.4).max().unwrap_or(0),
        });
    }
    out
}

/// Send lag past the time between arrivals means sends bunch up: the generator is at its
/// limit;
/// send lag above a tenth of the latency p99 means the percentiles are partly the
/// generator's. Both are relative, so a slow rate is not told to go slower and a busy
/// machine shows in the report instead of in inflated numbers. Returns the second.
fn lag_warnings(scenario: &Scenario, lag: &Percentiles, latency: &Percentiles, warnings: &mut Vec<String>) -> bool {
    // Several open scenarios send at once: their peaks add up.
    let peaks: Vec<f64> = scenario.part_refs().iter().filter_map(|p| p.load.peak_rate()).collect();
    if peaks.is_empty() {
        return false;
    }
    let peak: f64 = peaks.iter().sum();
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
