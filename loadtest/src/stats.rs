//! What a run measures: per-operation HdrHistograms in microseconds (3 significant
//! digits) of the successful responses, corrected for coordinated omission and
//! uncorrected, and of the failed ones apart; status counts, drops, the generator's own
//! send lag, and a per-second time series. Several scenarios of one run share one
//! `Stats` (each through its [`Recorder`]), so totals and windows across them are exact.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::{Mutex, MutexGuard};
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
    /// With several scenarios: each one's share of this second, in the order of the
    /// report's `scenarios`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenarios: Vec<PartSecond>,
}

/// One scenario's arrivals and responses in one second.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct PartSecond {
    pub target: u64,
    pub completed: u64,
    pub errors: u64,
    pub dropped: u64,
}

/// An `over` threshold's sliding window: the last `len` seconds of responses of its
/// operations, each second kept compressed (a full histogram is ~190 KB), summed.
pub struct Window {
    ops: Vec<usize>,
    len: usize,
    metric: crate::threshold::Metric,
    higher_is_worse: bool,
    /// Each second: its histogram (V2 deflate), responses, failed responses.
    ring: VecDeque<(Vec<u8>, u64, u64)>,
    sum: Histogram<u64>,
    count: u64,
    errors: u64,
    /// The worst full window so far: its value and the second it ended at (exclusive).
    pub worst: Option<(f64, u64)>,
}

impl Window {
    pub fn new(ops: Vec<usize>, seconds: u64, metric: crate::threshold::Metric, higher_is_worse: bool) -> Window {
        Window {
            ops,
            len: seconds.max(1) as usize,
            metric,
            higher_is_worse,
            ring: VecDeque::new(),
            sum: histogram(),
            count: 0,
            errors: 0,
            worst: None,
        }
    }

    /// Adds second `end - 1` (its latencies in `second`) and judges the window ending
    /// there once it is full.
    fn push(&mut self, second: &Histogram<u64>, count: u64, errors: u64, end: u64) {
        use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
        let mut bytes = Vec::new();
        // Writing to a Vec cannot fail; a histogram that would not encode is kept out.
        if V2DeflateSerializer::new().serialize(second, &mut bytes).is_ok() {
            let _ = self.sum.add(second);
        }
        self.count += count;
        self.errors += errors;
        self.ring.push_back((bytes, count, errors));
        if self.ring.len() > self.len
            && let Some((old, count, errors)) = self.ring.pop_front()
        {
            if let Ok(h) = Deserializer::new().deserialize::<u64, _>(&mut old.as_slice()) {
                let _ = self.sum.subtract(&h);
            }
            self.count -= count;
            self.errors -= errors;
        }
        // A window with no response says nothing (a scenario not started yet); a stall
        // shows in the windows its late responses complete in, corrected.
        if self.ring.len() < self.len || self.count == 0 {
            return;
        }
        let value = crate::threshold::value_of(self.metric, &self.sum, self.count, self.errors);
        let worse = |a: f64, b: f64| if self.higher_is_worse { a > b } else { a < b };
        if self.worst.is_none_or(|(w, _)| worse(value, w)) {
            self.worst = Some((value, end));
        }
    }
}

/// One answered request.
pub struct Answer<'a> {
    /// Its reported operation.
    pub op: usize,
    /// Its (intended) send time, since measurement start: the second it counts in.
    pub at: Duration,
    /// From the intended send time (open model), or as measured (closed model).
    pub corrected: Duration,
    /// From the actual send time.
    pub service: Duration,
    /// Actual minus intended send time.
    pub lag: Duration,
    /// `OK` or the gRPC status name.
    pub code: &'a str,
    /// Closed model: the interval the client expected between its requests;
    /// HdrHistogram's `record_correct` then adds the samples a stalled server hid.
    pub expected: Option<Duration>,
}

pub struct Stats {
    pub ops: Vec<OpStats>,
    pub send_lag: Histogram<u64>,
    /// Arrivals after warm-up (open model), the target the achieved rate is judged by.
    pub scheduled: u64,
    pub dropped: u64,
    pub seconds: Vec<Second>,
    /// Latencies of the current second, for its percentiles: all, and per operation;
    /// and each operation's responses and failures in it (for windows).
    current: Histogram<u64>,
    current_ops: Vec<Histogram<u64>>,
    current_counts: Vec<(u64, u64)>,
    /// p99 of the last closed second, for the progress line.
    last_p99: u64,
    /// Seconds closed so far: `0..closed`.
    closed: u64,
    /// With several scenarios: the scenario of each operation.
    part_of: Vec<usize>,
    parts: usize,
    /// The `over` thresholds' windows, in the order they were watched.
    pub windows: Vec<Window>,
    /// Where each closed second's per-operation share goes (live OTLP metrics).
    pub live: Option<crate::live::SecondSink>,
    /// Server streams of each operation open now, and the most open at once.
    pub open_streams: Vec<(u64, u64)>,
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
            current_counts: vec![(0, 0); ops],
            last_p99: 0,
            closed: 0,
            part_of: Vec::new(),
            parts: 0,
            windows: Vec::new(),
            live: None,
            open_streams: vec![(0, 0); ops],
        }
    }

    /// Stats for the run laid out in `layout`, with each scenario's share of every second
    /// kept when there are several.
    pub fn for_layout(layout: &crate::scenario::Layout) -> Stats {
        let ops = layout.spans.last().map_or(0, |s| s.ops.end);
        let mut stats = Stats::new(ops);
        if layout.is_multi() {
            stats.parts = layout.spans.len();
            stats.part_of = (0..ops).map(|op| layout.part_of(op)).collect();
        }
        stats
    }

    /// Watches a window for an `over` threshold; its verdict is `windows[i].worst`.
    pub fn watch(&mut self, window: Window) -> usize {
        self.windows.push(window);
        self.windows.len() - 1
    }

    fn second(&mut self, at: Duration) -> &mut Second {
        let s = at.as_secs();
        while self.seconds.len() as u64 <= s {
            let n = self.seconds.len() as u64;
            self.seconds.push(Second {
                second: n,
                scenarios: vec![PartSecond::default(); self.parts],
                ..Second::default()
            });
        }
        &mut self.seconds[s as usize]
    }

    /// An arrival at `at` (since measurement start) for scenario `part`.
    pub fn arrival(&mut self, part: usize, at: Duration, dropped: bool) {
        self.scheduled += 1;
        self.dropped += u64::from(dropped);
        let second = self.second(at);
        second.target += 1;
        second.dropped += u64::from(dropped);
        if let Some(p) = second.scenarios.get_mut(part) {
            p.target += 1;
            p.dropped += u64::from(dropped);
        }
    }

    /// A response; see [`Answer`].
    pub fn response(&mut self, answer: Answer<'_>) {
        let Answer {
            op,
            at,
            corrected,
            service,
            lag,
            code,
            expected,
        } = answer;
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
            let _ = match expected {
                Some(interval) => self.current_ops[op].record_correct(micros(corrected), micros(interval)),
                None => self.current_ops[op].record(micros(corrected)),
            };
        }
        let counts = &mut self.current_counts[op];
        counts.0 += 1;
        counts.1 += u64::from(failed);
        let part = self.part_of.get(op).copied();
        let second = self.second(at);
        second.completed += 1;
        if failed {
            second.errors += 1;
            count(&mut second.error_codes, code);
        }
        if let Some(p) = part.and_then(|p| second.scenarios.get_mut(p)) {
            p.completed += 1;
            p.errors += u64::from(failed);
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

    /// A server stream of `op` opened (`true`) or closed.
    pub fn stream(&mut self, op: usize, opened: bool) {
        let (now, peak) = &mut self.open_streams[op];
        if opened {
            *now += 1;
            *peak = (*peak).max(*now);
        } else {
            *now = now.saturating_sub(1);
        }
    }

    /// Closes every second before `end` not closed yet: the clock of the run's furthest
    /// scenario drives it, the others' calls for seconds already closed do nothing.
    pub fn close_until(&mut self, end: u64) {
        while self.closed < end {
            self.close_second(self.closed);
        }
    }

    /// Closes second `s`: stores its percentiles, moves the windows, starts a new one.
    fn close_second(&mut self, s: u64) {
        self.closed = s + 1;
        for w in &mut self.windows {
            let mut second = histogram();
            let (mut count, mut errors) = (0, 0);
            for &op in &w.ops {
                let _ = second.add(&self.current_ops[op]);
                count += self.current_counts[op].0;
                errors += self.current_counts[op].1;
            }
            w.push(&second, count, errors, s + 1);
        }
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
        match &self.live {
            Some(live) => {
                // Handed over whole (a fresh histogram takes each one's place), so the
                // export thread does the work, not the request path.
                let ops = self
                    .current_ops
                    .iter_mut()
                    .zip(&self.current_counts)
                    .map(|(h, &(n, e))| (n, e, std::mem::replace(h, histogram())))
                    .collect();
                if live.send(crate::live::Second { ops }).is_err() {
                    self.live = None;
                }
            }
            None => {
                for h in &mut self.current_ops {
                    h.reset();
                }
            }
        }
        self.current_counts.fill((0, 0));
    }

    /// p99 of the last full second.
    pub fn current_p99(&self) -> u64 {
        self.last_p99
    }

    /// All operations merged.
    pub fn total(&self) -> (Histogram<u64>, u64, u64) {
        self.merged(0..self.ops.len())
    }

    /// The operations `ops` merged: their successful responses' corrected latencies,
    /// their responses and failures.
    pub fn merged(&self, ops: impl IntoIterator<Item = usize>) -> (Histogram<u64>, u64, u64) {
        let mut all = histogram();
        let (mut count, mut errors) = (0, 0);
        for o in ops.into_iter().filter_map(|i| self.ops.get(i)) {
            let _ = all.add(&o.corrected);
            count += o.count();
            errors += o.errors();
        }
        (all, count, errors)
    }
}

/// Where one scenario of a run records: the run's stats, with its operations from `base`
/// and its measured time from `shift` (when it starts measuring, after the run's first
/// scenario does). A run of one scenario records at base 0, shift 0.
#[derive(Clone)]
pub struct Recorder {
    pub stats: Arc<Mutex<Stats>>,
    pub part: usize,
    pub base: usize,
    pub shift: Duration,
}

impl Recorder {
    /// The whole of `stats`, for a run of one scenario.
    pub fn whole(stats: Arc<Mutex<Stats>>) -> Recorder {
        Recorder {
            stats,
            part: 0,
            base: 0,
            shift: Duration::ZERO,
        }
    }

    pub fn lock(&self) -> Recording<'_> {
        Recording {
            stats: self.stats.lock(),
            at: self,
        }
    }
}

/// [`Stats`] locked for one scenario: its indices and times, placed in the run's.
pub struct Recording<'a> {
    stats: MutexGuard<'a, Stats>,
    at: &'a Recorder,
}

impl Recording<'_> {
    pub fn arrival(&mut self, at: Duration, dropped: bool) {
        self.stats.arrival(self.at.part, self.at.shift + at, dropped);
    }

    /// See [`Stats::response`]; `answer` in this scenario's indices and times.
    pub fn response(&mut self, mut answer: Answer<'_>) {
        answer.op += self.at.base;
        answer.at += self.at.shift;
        self.stats.response(answer);
    }

    pub fn stream(&mut self, op: usize, opened: bool) {
        self.stats.stream(self.at.base + op, opened);
    }

    pub fn sample(&mut self, op: usize, latency: Duration) {
        self.stats.sample(self.at.base + op, latency);
    }

    /// Closes the seconds before this scenario's measured second `end`.
    pub fn close_until(&mut self, end: u64) {
        self.stats
            .close_until((self.at.shift + Duration::from_secs(end)).as_secs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::threshold::Metric;
    use rand::{Rng, SeedableRng};

    /// One second as the test saw it: OK latencies of both operations and of op 0, op 1's
    /// responses and failures.
    type Sec = (Vec<u64>, Vec<u64>, u64, u64);

    /// A window's worst value is that of one histogram of the seconds it covers, exactly:
    /// the compressed ring takes away what it added; empty windows are not judged.
    #[test]
    fn a_sliding_window_equals_the_histogram_of_its_seconds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut stats = Stats::new(2);
        stats.watch(Window::new(vec![0, 1], 3, Metric::Percentile(99.0), true));
        stats.watch(Window::new(vec![1], 2, Metric::ErrorRate, true));
        stats.watch(Window::new(vec![0], 4, Metric::Mean, false));
        // Per second: latencies of ops 0 and 1 (OK ones), and op 1's (responses, failures).
        let mut seconds: Vec<Sec> = Vec::new();
        for s in 0..12u64 {
            let (mut both, mut zero, mut n1, mut e1) = (Vec::new(), Vec::new(), 0, 0);
            // Second 5 has no response at all.
            let count = if s == 5 { 0 } else { rng.random_range(50..500) };
            for _ in 0..count {
                let op = rng.random_range(0..2);
                let latency = 10f64.powf(rng.random_range(1.0..6.0)) as u64;
                let failed = op == 1 && rng.random_bool(0.1);
                let at = Duration::from_secs(s);
                let d = Duration::from_micros(latency);
                stats.response(Answer {
                    op,
                    at,
                    corrected: d,
                    service: d,
                    lag: Duration::ZERO,
                    code: if failed { "UNAVAILABLE" } else { "OK" },
                    expected: None,
                });
                if !failed {
                    both.push(latency);
                    if op == 0 {
                        zero.push(latency);
                    }
                }
                if op == 1 {
                    n1 += 1;
                    e1 += u64::from(failed);
                }
            }
            stats.close_until(s + 1);
            seconds.push((both, zero, n1, e1));
        }
        let worst = |len: usize, value: &dyn Fn(&[Sec]) -> Option<f64>, higher: bool| {
            let mut best: Option<(f64, u64)> = None;
            for end in len..=seconds.len() {
                let Some(v) = value(&seconds[end - len..end]) else {
                    continue;
                };
                if best.is_none_or(|(b, _)| if higher { v > b } else { v < b }) {
                    best = Some((v, end as u64));
                }
            }
            best
        };
        let p99 = |w: &[Sec]| {
            let mut h = histogram();
            w.iter().flat_map(|s| &s.0).for_each(|v| h.record(*v).unwrap());
            (!h.is_empty()).then(|| h.value_at_quantile(0.99) as f64)
        };
        let errors = |w: &[Sec]| {
            let (n, e) = w.iter().fold((0, 0), |(n, e), s| (n + s.2, e + s.3));
            (n > 0).then(|| e as f64 / n as f64)
        };
        let mean = |w: &[Sec]| {
            let mut h = histogram();
            w.iter().flat_map(|s| &s.1).for_each(|v| h.record(*v).unwrap());
            (!h.is_empty()).then(|| h.mean())
        };
        assert_eq!(stats.windows[0].worst, worst(3, &p99, true));
        assert_eq!(stats.windows[1].worst, worst(2, &errors, true));
        assert_eq!(stats.windows[2].worst, worst(4, &mean, false));
        assert!(stats.windows.iter().all(|w| w.worst.is_some()));
    }
}
