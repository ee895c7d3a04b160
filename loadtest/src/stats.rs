//! What a run measures: per-operation HdrHistograms in microseconds (3 significant
//! digits) of the successful responses, corrected for coordinated omission and
//! uncorrected, and of the failed ones apart; status counts, drops, the generator's own
//! send lag, and a per-second time series.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded: one hour.
const MAX_MICROS: u64 = 3_600_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds")
}

fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).clamp(1, MAX_MICROS)
}

pub struct OpStats {
    /// From the intended send time (open model) or corrected by the expected interval
    /// (closed model): what users would have seen.
    pub corrected: Histogram<u64>,
    /// From the actual send time: the server's service time.
    pub service: Histogram<u64>,
    /// Corrected latency of the failed responses, kept apart: a fast error must not make
    /// the percentiles of the answers look better, nor a slow one worse.
    pub failed: Histogram<u64>,
    /// Responses by status: `OK`, `NOT_FOUND`, `UNAVAILABLE`, ...
    pub codes: BTreeMap<String, u64>,
}

impl OpStats {
    fn new() -> OpStats {
        OpStats {
            corrected: histogram(),
            service: histogram(),
            failed: histogram(),
            codes: BTreeMap::new(),
        }
    }

    pub fn count(&self) -> u64 {
        self.codes.values().sum()
    }

    pub fn errors(&self) -> u64 {
        error_count(&self.codes)
    }
}

/// Counts one `code` in a status-count map, without allocating when the code's entry
/// exists already (almost always).
fn count(codes: &mut BTreeMap<String, u64>, code: &str) {
    match codes.get_mut(code) {
        Some(n) => *n += 1,
        None => {
            codes.insert(code.to_string(), 1);
        }
    }
}

/// Responses other than `OK` in a status-count map.
pub fn error_count(codes: &BTreeMap<String, u64>) -> u64 {
    codes.iter().filter(|(c, _)| c.as_str() != "OK").map(|(_, n)| n).sum()
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Second {
    /// Seconds since the start of measurement (after warm-up).
    pub second: u64,
    /// Arrivals scheduled in this second (open model; sends in the closed model).
    pub target: u64,
    pub completed: u64,
    pub errors: u64,
    pub dropped: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// p99 of each operation in this second (0 when it had no response), in the order
    /// of the report's operations.
    #[serde(default)]
    pub op_p99_us: Vec<u64>,
    /// The failed responses of this second by status code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_codes: BTreeMap<String, u64>,
}

pub struct Stats {
    pub ops: Vec<OpStats>,
    pub send_lag: Histogram<u64>,
    /// Arrivals after warm-up (open model), the target the achieved rate is judged by.
    pub scheduled: u64,
    pub dropped: u64,
    pub seconds: Vec<Second>,
    /// Latencies of the current second, for its percentiles: all, and per operation.
    current: Histogram<u64>,
    current_ops: Vec<Histogram<u64>>,
    /// p99 of the last closed second, for the progress line.
    last_p99: u64,
}

impl Stats {
    pub fn new(ops: usize) -> Stats {
        Stats {
            ops: (0..ops).map(|_| OpStats::new()).collect(),
            send_lag: histogram(),
            scheduled: 0,
            dropped: 0,
            seconds: Vec::new(),
            current: histogram(),
            current_ops: (0..ops).map(|_| histogram()).collect(),
            last_p99: 0,
        }
    }

    fn second(&mut self, at: Duration) -> &mut Second {
        let s = at.as_secs();
        while self.seconds.len() as u64 <= s {
            let n = self.seconds.len() as u64;
            self.seconds.push(Second {
                second: n,
                ..Second::default()
            });
        }
        &mut self.seconds[s as usize]
    }

    /// An arrival at `at` (since measurement start).
    pub fn arrival(&mut self, at: Duration, dropped: bool) {
        self.scheduled += 1;
        let second = self.second(at);
        second.target += 1;
        if dropped {
            second.dropped += 1;
            self.dropped += 1;
        }
    }

    /// A response: `code` is `OK` or the gRPC status name. `expected` (closed model) is
    /// the interval the client expected between its requests: HdrHistogram's
    /// `record_correct` then adds the samples a stalled server hid.
    #[allow(clippy::too_many_arguments)]
    pub fn response(
        &mut self,
        op: usize,
        at: Duration,
        corrected: Duration,
        service: Duration,
        lag: Duration,
        code: &str,
        expected: Option<Duration>,
    ) {
        let failed = code != "OK";
        let o = &mut self.ops[op];
        let latencies = if failed { &mut o.failed } else { &mut o.corrected };
        let _ = match expected {
            Some(interval) => latencies.record_correct(micros(corrected), micros(interval)),
            None => latencies.record(micros(corrected)),
        };
        if !failed {
            let _ = o.service.record(micros(service));
        }
        count(&mut o.codes, code);
        let _ = self.send_lag.record(micros(lag));
        if !failed {
            let _ = self.current.record(micros(corrected));
            let _ = self.current_ops[op].record(micros(corrected));
        }
        let second = self.second(at);
        second.completed += 1;
        if failed {
            second.errors += 1;
            count(&mut second.error_codes, code);
        }
    }

    /// A latency that is not a request (a subscriber's delivery, a stream's message):
    /// kept in its operation's histograms, not counted in the per-second requests.
    pub fn sample(&mut self, op: usize, latency: Duration) {
        let o = &mut self.ops[op];
        let _ = o.corrected.record(micros(latency));
        let _ = o.service.record(micros(latency));
        count(&mut o.codes, "OK");
    }

    /// Closes second `s`: stores its percentiles and starts a new one.
    pub fn close_second(&mut self, s: u64) {
        let (p50, p99, max) = (
            self.current.value_at_quantile(0.5),
            self.current.value_at_quantile(0.99),
            self.current.max(),
        );
        let op_p99: Vec<u64> = self.current_ops.iter().map(|h| h.value_at_quantile(0.99)).collect();
        let second = self.second(Duration::from_secs(s));
        second.p50_us = p50;
        second.p99_us = p99;
        second.max_us = max;
        second.op_p99_us = op_p99;
        self.last_p99 = p99;
        self.current.reset();
        for h in &mut self.current_ops {
            h.reset();
        }
    }

    /// p99 of the last full second.
    pub fn current_p99(&self) -> u64 {
        self.last_p99
    }

    /// All operations merged.
    pub fn total(&self) -> (Histogram<u64>, u64, u64) {
        let mut all = histogram();
        let (mut count, mut errors) = (0, 0);
        for o in &self.ops {
            let _ = all.add(&o.corrected);
            count += o.count();
            errors += o.errors();
        }
        (all, count, errors)
    }
}
