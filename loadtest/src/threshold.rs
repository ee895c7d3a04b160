//! Pass/fail rules such as `p99 < 5ms`, `p99.9 < 20ms for keyvalue.get`,
//! `error_rate < 0.1%`, `achieved_rate >= 95%`. `in <scenario>` scopes a rule to one of
//! several scenarios; `over 10s` makes it hold for every 10-second window of the run, not
//! only for the whole; with `abort_on_fail [after 10s]` a rule is also checked every
//! second of the run, which stops when it fails.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Latency percentile (0-100), corrected for coordinated omission.
    Percentile(f64),
    Max,
    Mean,
    /// Failed requests / all requests.
    ErrorRate,
    /// Achieved / target request rate (open model); drops count against it.
    AchievedRate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Comparison {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    pub text: String,
    pub metric: Metric,
    pub comparison: Comparison,
    /// Microseconds for latencies, a fraction (0-1) for rates.
    pub value: f64,
    /// Only this operation; all operations together when absent.
    pub operation: Option<String>,
    /// Only this one of several scenarios (`in probe`).
    pub scenario: Option<String>,
    /// `over 10s`: must hold for every window of this length (whole seconds), each
    /// window's value computed from the responses completed in it.
    pub window: Option<std::time::Duration>,
    /// `abort_on_fail`: checked every second once this much of the measured time has
    /// passed; the run stops when it fails.
    pub abort_after: Option<std::time::Duration>,
}

const FORM: &str = "expected `<metric> <op> <value> [for <operation>] [in <scenario>] [over <window>] \
[abort_on_fail [after <duration>]]`, e.g. `p99 < 5ms`, `p99.9 < 20ms for keyvalue.get`, `error_rate < 0.1%`, \
`achieved_rate >= 95%`, `p99 < 2ms in probe`, `p99 < 5ms over 10s`, `error_rate < 5% abort_on_fail after 10s`; \
metrics: pNN, max, mean, error_rate, achieved_rate; ops: < <= > >=";

/// The longest `over` window.
pub const MAX_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

impl FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Threshold, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (rule, rest) = match words.as_slice() {
            [m, c, v, rest @ ..] => ([*m, *c, *v], rest),
            _ => return Err(format!("{text:?}: {FORM}")),
        };
        let (operation, rest) = match rest {
            ["for", op, rest @ ..] => (Some(op.to_string()), rest),
            rest => (None, rest),
        };
        let (scenario, rest) = match rest {
            ["in", name, rest @ ..] => (Some(name.to_string()), rest),
            rest => (None, rest),
        };
        let (window, rest) = match rest {
            ["over", window, rest @ ..] => {
                let d = humantime::parse_duration(window)
                    .map_err(|e| format!("{text:?}: cannot read the window {window:?} ({e}); {FORM}"))?;
                if d.subsec_nanos() != 0 || d.is_zero() || d > MAX_WINDOW {
                    return Err(format!(
                        "{text:?}: a window is whole seconds from 1s to {}, not {window:?}",
                        humantime::format_duration(MAX_WINDOW)
                    ));
                }
                (Some(d), rest)
            }
            rest => (None, rest),
        };
        let abort_after = match rest {
            [] => None,
            ["abort_on_fail"] => Some(std::time::Duration::ZERO),
            ["abort_on_fail", "after", delay] => Some(
                humantime::parse_duration(delay)
                    .map_err(|e| format!("{text:?}: cannot read the delay {delay:?} ({e}); {FORM}"))?,
            ),
            _ => return Err(format!("{text:?}: {FORM}")),
        };
        let [metric, comparison, value] = rule;
        let metric = match metric {
            "max" => Metric::Max,
            "mean" => Metric::Mean,
            "error_rate" => Metric::ErrorRate,
            "achieved_rate" => Metric::AchievedRate,
            p if p.starts_with('p') => match p[1..].parse::<f64>() {
                Ok(q) if q > 0.0 && q <= 100.0 => Metric::Percentile(q),
                _ => return Err(format!("{text:?}: {p:?} is not a percentile p0<N<=p100; {FORM}")),
            },
            other => return Err(format!("{text:?}: unknown metric {other:?}; {FORM}")),
        };
        let comparison = match comparison {
            "<" => Comparison::Lt,
            "<=" => Comparison::Le,
            ">" => Comparison::Gt,
            ">=" => Comparison::Ge,
            other => return Err(format!("{text:?}: unknown comparison {other:?}; {FORM}")),
        };
        let value = match metric {
            Metric::ErrorRate | Metric::AchievedRate => parse_fraction(value),
            _ => parse_micros(value),
        }
        .ok_or_else(|| format!("{text:?}: cannot read the value {value:?}; {FORM}"))?;
        if window.is_some() && metric == Metric::AchievedRate {
            return Err(format!(
                "{text:?}: achieved_rate is judged on the whole run; `over` windows are for latencies and error_rate"
            ));
        }
        if matches!(metric, Metric::ErrorRate | Metric::AchievedRate) && value > 1.0 {
            return Err(format!(
                "{text:?}: a rate is from 0 to 100% (or 0 to 1), not {}%",
                value * 100.0
            ));
        }
        Ok(Threshold {
            text: text.to_string(),
            metric,
            comparison,
            value,
            operation,
            scenario,
            window,
            abort_after,
        })
    }
}

/// The value of a latency or error-rate metric over `latency` (the successful
/// responses) and `count` responses of which `errors` failed. `achieved_rate` needs the
/// schedule and is computed by the report; it is 0 here.
pub fn value_of(metric: Metric, latency: &hdrhistogram::Histogram<u64>, count: u64, errors: u64) -> f64 {
    match metric {
        Metric::Percentile(q) => latency.value_at_quantile(q / 100.0) as f64,
        Metric::Max => latency.max() as f64,
        Metric::Mean if latency.is_empty() => 0.0,
        Metric::Mean => latency.mean(),
        Metric::ErrorRate if count == 0 => 0.0,
        Metric::ErrorRate => errors as f64 / count as f64,
        Metric::AchievedRate => 0.0,
    }
}

/// `5ms`, `250us`, `1.5s` -> microseconds.
fn parse_micros(v: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        return None;
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n * scale)
}

/// `0.1%` or `0.001` -> 0.001.
pub(crate) fn parse_fraction(v: &str) -> Option<f64> {
    // Divide (not multiply by 0.01) so that 95% is exactly 0.95.
    let (number, divisor) = match v.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (v, 1.0),
    };
    number
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n / divisor)
}

impl Threshold {
    /// Whether a higher value is the worse one (`<` and `<=` rules): which window of an
    /// `over` rule is its verdict.
    pub fn higher_is_worse(&self) -> bool {
        matches!(self.comparison, Comparison::Lt | Comparison::Le)
    }

    /// The reported operations this rule judges (indices into `op_names`, laid out as
    /// `layout`): the named operation (in every scenario that has it, or only in `in`'s),
    /// or every request operation of the run or of `in`'s scenario. An error names what
    /// is not there.
    pub fn scope(&self, op_names: &[String], layout: &crate::scenario::Layout) -> Result<Vec<usize>, String> {
        let spans: Vec<&crate::scenario::Span> = match &self.scenario {
            Some(name) if !layout.is_multi() => {
                return Err(format!(
                    "{:?}: `in {name}` is for a file of several `scenarios`; this one has one",
                    self.text
                ));
            }
            Some(name) => {
                let found: Vec<_> = layout.spans.iter().filter(|s| s.name.as_ref() == Some(name)).collect();
                if found.is_empty() {
                    return Err(format!(
                        "{:?}: no scenario {name:?} (the file has: {})",
                        self.text,
                        layout.names().join(", ")
                    ));
                }
                found
            }
            None => layout.spans.iter().collect(),
        };
        let mut ops = Vec::new();
        for span in spans {
            for i in span.ops.clone() {
                let Some(reported) = op_names.get(i) else { continue };
                let local = span.local(reported);
                let judged = match &self.operation {
                    Some(op) => local == op || reported == op,
                    None => !crate::scenario::is_synthetic(local),
                };
                if judged {
                    ops.push(i);
                }
            }
        }
        if let Some(op) = self.operation.as_ref().filter(|_| ops.is_empty()) {
            return Err(format!(
                "{:?}: {} has no operation {op:?} (it runs: {})",
                self.text,
                self.scenario
                    .as_ref()
                    .map_or("this scenario".to_string(), |s| format!("scenario {s:?}")),
                op_names.join(", ")
            ));
        }
        Ok(ops)
    }

    pub fn holds(&self, actual: f64) -> bool {
        match self.comparison {
            Comparison::Lt => actual < self.value,
            Comparison::Le => actual <= self.value,
            Comparison::Gt => actual > self.value,
            Comparison::Ge => actual >= self.value,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let t: Threshold = "p99.9 < 20ms for keyvalue.get".parse().unwrap();
        assert_eq!(t.metric, Metric::Percentile(99.9));
        assert_eq!(t.value, 20_000.0);
        assert_eq!(t.operation.as_deref(), Some("keyvalue.get"));
        let t: Threshold = "error_rate < 0.1%".parse().unwrap();
        assert!((t.value - 0.001).abs() < 1e-12);
        assert!(t.holds(0.0005) && !t.holds(0.001));
        let t: Threshold = "achieved_rate >= 95%".parse().unwrap();
        assert!(t.holds(0.95) && !t.holds(0.94));
        assert_eq!("max <= 250us".parse::<Threshold>().unwrap().value, 250.0);
        assert_eq!(t.abort_after, None);
        let t: Threshold = "error_rate < 5% for keyvalue.get abort_on_fail after 10s"
            .parse()
            .unwrap();
        assert_eq!(t.operation.as_deref(), Some("keyvalue.get"));
        assert_eq!(t.abort_after, Some(std::time::Duration::from_secs(10)));
        let t: Threshold = "p99 < 5ms abort_on_fail".parse().unwrap();
        assert_eq!(t.abort_after, Some(std::time::Duration::ZERO));
        let t: Threshold = "p99 < 2ms for keyvalue.get in probe over 10s abort_on_fail after 20s"
            .parse()
            .unwrap();
        assert_eq!(t.operation.as_deref(), Some("keyvalue.get"));
        assert_eq!(t.scenario.as_deref(), Some("probe"));
        assert_eq!(t.window, Some(std::time::Duration::from_secs(10)));
        assert_eq!(t.abort_after, Some(std::time::Duration::from_secs(20)));
        let t: Threshold = "error_rate > 1% over 1m".parse().unwrap();
        assert_eq!(t.window, Some(std::time::Duration::from_secs(60)));
        assert!(!t.higher_is_worse());
    }

    #[test]
    fn bad_forms_say_what_is_expected() {
        for bad in [
            "p99 5ms",
            "p101 < 1ms",
            "latency < 1ms",
            "p99 ~ 1ms",
            "p99 < 5 ms",
            "p99 < fast",
            "error_rate < x%",
            "error_rate < 5",
            "achieved_rate >= 120%",
            "p99 < 5ms abort",
            "p99 < 5ms abort_on_fail after",
            "p99 < 5ms abort_on_fail after soon",
            "p99 < 5ms after 10s",
            "p99 < 5ms over",
            "p99 < 5ms over 1.5s",
            "p99 < 5ms over 0s",
            "p99 < 5ms over 2h",
            "p99 < 5ms over 10s in probe",
            "p99 < 5ms in",
            "achieved_rate >= 95% over 10s",
        ] {
            let err = bad.parse::<Threshold>().unwrap_err();
            assert!(
                err.contains("expected")
                    || err.contains("from 0 to 100%")
                    || err.contains("whole seconds")
                    || err.contains("whole run"),
                "{bad}: {err}"
            );
        }
    }
}
