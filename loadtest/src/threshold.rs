//! Pass/fail rules such as `p99 < 5ms`, `p99.9 < 20ms for keyvalue.get`,
//! `error_rate < 0.1%`, `achieved_rate >= 95%`; with `abort_on_fail [after 10s]` a rule
//! is also checked every second of the run, which stops when it fails.

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
    /// `abort_on_fail`: checked every second once this much of the measured time has
    /// passed; the run stops when it fails.
    pub abort_after: Option<std::time::Duration>,
}

const FORM: &str = "expected `<metric> <op> <value> [for <operation>] [abort_on_fail [after <duration>]]`, \
e.g. `p99 < 5ms`, `p99.9 < 20ms for keyvalue.get`, `error_rate < 0.1%`, `achieved_rate >= 95%`, \
`error_rate < 5% abort_on_fail after 10s`; metrics: pNN, max, mean, error_rate, achieved_rate; ops: < <= > >=";

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
            abort_after,
        })
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
fn parse_fraction(v: &str) -> Option<f64> {
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
        ] {
            let err = bad.parse::<Threshold>().unwrap_err();
            assert!(
                err.contains("expected") || err.contains("from 0 to 100%"),
                "{bad}: {err}"
            );
        }
    }
}
