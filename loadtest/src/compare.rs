//! `loadtest compare`: two runs, or two series of repeated runs, per operation. Latency
//! (p50, p90, p99, p99.9) and throughput must stay within the tolerance and the error
//! rate within a percentage point; with repeated runs a change counts only when it is
//! beyond the tolerance at the median and the two series' ranges do not overlap, since a
//! single tail percentile moves by tens of percent between identical runs.

use crate::report::{OpReport, RunReport, fmt_us};

/// Most the error rate may grow (in percentage points) before it is a regression; a rate
/// is noisy near 0, so a change below this is not one.
const ERROR_RATE_SLACK: f64 = 0.01;

/// What a comparison found, line by line, and whether it passed.
pub struct Comparison {
    pub lines: Vec<String>,
    pub passed: bool,
}

/// A metric over a series of runs.
#[derive(Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(mut values: Vec<f64>) -> Spread {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n == 0 {
            0.0
        } else if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Spread {
            median,
            min: values.first().copied().unwrap_or(0.0),
            max: values.last().copied().unwrap_or(0.0),
        }
    }
}

/// One number of an operation's report.
type Measure = fn(&OpReport) -> f64;

/// What is compared, per operation.
const METRICS: [(&str, Measure, Kind); 6] = [
    ("p50", |o| o.latency.p50_us as f64, Kind::Latency),
    ("p90", |o| o.latency.p90_us as f64, Kind::Latency),
    ("p99", |o| o.latency.p99_us as f64, Kind::Latency),
    ("p99.9", |o| o.latency.p99_9_us as f64, Kind::Latency),
    ("rate/s", |o| o.rate_per_s, Kind::Rate),
    ("errors", |o| o.errors as f64 / o.count.max(1) as f64, Kind::ErrorRate),
];

/// What a metric is: how a change is judged and shown.
#[derive(Clone, Copy)]
enum Kind {
    /// Microseconds; higher is worse, by more than the tolerance.
    Latency,
    /// Requests per second; lower is worse, by more than the tolerance.
    Rate,
    /// A fraction; higher is worse, by more than [`ERROR_RATE_SLACK`].
    ErrorRate,
}

impl Kind {
    /// Whether the new median is worse than the base's beyond what is allowed.
    fn beyond(self, b: Spread, n: Spread, tolerance: f64) -> bool {
        match self {
            Kind::Latency => n.median > b.median.max(1e-9) * (1.0 + tolerance),
            Kind::Rate => n.median < b.median * (1.0 - tolerance),
            Kind::ErrorRate => n.median - b.median > ERROR_RATE_SLACK,
        }
    }

    /// Whether every new run is worse than every base run.
    fn apart(self, b: Spread, n: Spread) -> bool {
        match self {
            Kind::Rate => n.max < b.min,
            Kind::Latency | Kind::ErrorRate => n.min > b.max,
        }
    }

    fn show(self, v: f64) -> String {
        match self {
            Kind::Latency => fmt_us(v),
            Kind::Rate => format!("{v:.1}"),
            Kind::ErrorRate => format!("{:.2}%", v * 100.0),
        }
    }

    fn change(self, b: Spread, n: Spread) -> String {
        match self {
            Kind::ErrorRate => format!("{:+.2}pp", (n.median - b.median) * 100.0),
            Kind::Latency | Kind::Rate => {
                format!("{:+.1}%", (n.median - b.median) / b.median.abs().max(1e-9) * 100.0)
            }
        }
    }
}

/// Compares `new` against `base` (each one run or several of the same scenario).
pub fn compare(base: &[RunReport], new: &[RunReport], tolerance: f64) -> Comparison {
    let mut lines = Vec::new();
    let mut passed = true;
    if let (Some(b), Some(n)) = (base.first(), new.first()) {
        for (what, b, n) in [
            ("scenario", &b.scenario.name, &n.scenario.name),
            ("target", &b.target, &n.target),
        ] {
            if b != n {
                lines.push(format!("note: the runs differ in {what}: {b:?} vs {n:?}"));
            }
        }
    }
    if base.len() > 1 || new.len() > 1 {
        lines.push(format!(
            "{} base run(s), {} new run(s): medians, ranges in brackets; a change counts when the ranges do not overlap",
            base.len(),
            new.len()
        ));
    }
    if base.iter().all(|r| r.passed)
        && let Some(failed) = new.iter().find(|r| !r.passed)
    {
        lines.push(format!("REGRESSION: a new run {}", failed.verdict_line()));
        passed = false;
    }
    lines.push(format!(
        "{:<20} {:<6} {:>18} {:>18} {:>9}  (tolerance +{:.0}%)",
        "operation",
        "",
        "base",
        "new",
        "change",
        tolerance * 100.0
    ));
    let Some(first) = new.first() else {
        return Comparison { lines, passed };
    };
    for op in first.rows().map(|o| o.operation.clone()) {
        let pick = |runs: &[RunReport], f: Measure| -> Option<Spread> {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|r| r.rows().find(|o| o.operation == op).map(f))
                .collect();
            (!values.is_empty()).then(|| Spread::of(values))
        };
        for (label, f, kind) in METRICS {
            let (Some(b), Some(n)) = (pick(base, f), pick(new, f)) else {
                lines.push(format!("{op:<20} only in the new run"));
                break;
            };
            let beyond = kind.beyond(b, n, tolerance);
            let regression = beyond && kind.apart(b, n);
            passed &= !regression;
            let show = |s: Spread| -> String {
                if s.min == s.max {
                    kind.show(s.median)
                } else {
                    format!("{} [{}-{}]", kind.show(s.median), kind.show(s.min), kind.show(s.max))
                }
            };
            let change = kind.change(b, n);
            lines.push(format!(
                "{op:<20} {label:<6} {:>18} {:>18} {change:>9}{}",
                show(b),
                show(n),
                if regression {
                    "  REGRESSION"
                } else if beyond {
                    "  (within the noise: the ranges overlap)"
                } else {
                    ""
                }
            ));
        }
    }
    lines.push(
        if passed {
            "no regression beyond the tolerance"
        } else {
            "FAILED: regression beyond the tolerance"
        }
        .to_string(),
    );
    Comparison { lines, passed }
}
