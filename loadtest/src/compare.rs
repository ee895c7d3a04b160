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

/// What is compared, per operation, and which way is worse.
const METRICS: [(&str, Measure, Worse); 6] = [
    ("p50", |o| o.latency.p50_us as f64, Worse::Higher),
    ("p90", |o| o.latency.p90_us as f64, Worse::Higher),
    ("p99", |o| o.latency.p99_us as f64, Worse::Higher),
    ("p99.9", |o| o.latency.p99_9_us as f64, Worse::Higher),
    ("rate/s", |o| o.rate_per_s, Worse::Lower),
    ("errors", |o| o.errors as f64 / o.count.max(1) as f64, Worse::Higher),
];

/// Which way is worse.
#[derive(Clone, Copy)]
enum Worse {
    Higher,
    Lower,
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
        for (label, f, worse) in METRICS {
            let (Some(b), Some(n)) = (pick(base, f), pick(new, f)) else {
                lines.push(format!("{op:<20} only in the new run"));
                break;
            };
            let errors = label == "errors";
            let beyond = if errors {
                n.median - b.median > ERROR_RATE_SLACK
            } else {
                match worse {
                    Worse::Higher => n.median > b.median.max(1e-9) * (1.0 + tolerance),
                    Worse::Lower => n.median < b.median * (1.0 - tolerance),
                }
            };
            let apart = match worse {
                Worse::Higher => n.min > b.max,
                Worse::Lower => n.max < b.min,
            };
            let regression = beyond && apart;
            passed &= !regression;
            let show = |s: Spread| -> String {
                let one = |v: f64| match label {
                    "rate/s" => format!("{v:.1}"),
                    "errors" => format!("{:.2}%", v * 100.0),
                    _ => fmt_us(v),
                };
                if s.min == s.max {
                    one(s.median)
                } else {
                    format!("{} [{}-{}]", one(s.median), one(s.min), one(s.max))
                }
            };
            let change = if errors {
                format!("{:+.2}pp", (n.median - b.median) * 100.0)
            } else {
                format!("{:+.1}%", (n.median - b.median) / b.median.abs().max(1e-9) * 100.0)
            };
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
