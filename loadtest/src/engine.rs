//! The load engine. Open model: a pacer schedules each arrival at its intended time
//! (rate ramps linearly within a stage) and latency counts from that time, so a stalled
//! server shows in the percentiles; arrivals beyond `max_in_flight` are dropped and
//! counted. Closed model: `concurrency` clients in a loop, corrected by the expected
//! interval.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prism_proxy::client::PrismClient;
use prism_proxy::interfaces::{Event, KeyValueBasic, QueueBasic, TimeSeriesBasic};
use prism_proxy::status::{code_name, code_of};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::scenario::{ClosedStage, Load, OpenStage, Scenario};
use crate::shard::Shard;
use crate::stats::Stats;
use crate::workload::{OpKind, Request, Workload};

/// Live counters for the progress display.
#[derive(Default)]
pub struct Progress {
    pub elapsed: Duration,
    pub target_rate: f64,
}

pub struct Engine {
    pub clients: Vec<PrismClient>,
    pub shard: Shard,
    pub stats: Arc<Mutex<Stats>>,
    pub progress: Arc<Mutex<Progress>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Sends one request; `Ok` or the gRPC status name.
async fn execute(client: &PrismClient, kind: OpKind, target: &str, request: Request) -> &'static str {
    let result = match kind {
        OpKind::Get => client.get(request.key).await.map(drop),
        OpKind::Set => client.set(request.key, request.value).await,
        OpKind::Delete => client.delete(request.key).await.map(drop),
        OpKind::Exists => client.exists(request.key).await.map(drop),
        OpKind::Enqueue => client.enqueue(target.to_string(), request.value).await.map(drop),
        OpKind::Append => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let event = Event {
                timestamp_ms: now,
                tags: [("source".to_string(), "loadtest".to_string())].into(),
                fields: [("bytes".to_string(), request.value.len() as f64)].into(),
            };
            client.append(target.to_string(), vec![event]).await.map(drop)
        }
    };
    match result {
        Ok(()) => "OK",
        Err(e) => code_name(code_of(&e)),
    }
}

/// Waits for `at` more precisely than tokio's 1 ms timer: sleep to within 2 ms, then
/// yield to the runtime (responses keep being processed) until the time has come.
async fn pace_until(at: Instant) {
    if let Some(coarse) = at.checked_sub(Duration::from_millis(2)).filter(|c| *c > Instant::now()) {
        tokio::time::sleep_until(coarse).await;
    }
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// Request rate at `t` seconds into the run, and the end of the run.
pub fn rate_at(stages: &[OpenStage], t: f64) -> Option<f64> {
    let mut start = 0.0;
    for s in stages {
        let d = s.duration.as_secs_f64();
        if t < start + d {
            let to = s.ramp_to.unwrap_or(s.rate);
            return Some(s.rate + (to - s.rate) * (t - start) / d);
        }
        start += d;
    }
    None
}

/// Concurrency at `t` seconds into the run.
fn concurrency_at(stages: &[ClosedStage], t: f64) -> Option<usize> {
    let mut start = 0.0;
    for s in stages {
        start += s.duration.as_secs_f64();
        if t < start {
            return Some(s.concurrency);
        }
    }
    None
}

impl Engine {
    /// Runs this engine's shard of `scenario`.
    pub async fn run(&self, scenario: &Scenario) -> anyhow::Result<()> {
        let scenario = &self.shard.apply(scenario);
        match &scenario.load {
            Load::Open {
                stages,
                max_in_flight,
                warmup,
            } => self.open(scenario, stages, *max_in_flight, *warmup).await,
            Load::Closed {
                stages,
                think_time,
                warmup,
            } => self.closed(scenario, stages, *think_time, *warmup).await,
        }
    }

    async fn open(
        &self,
        scenario: &Scenario,
        stages: &[OpenStage],
        max_in_flight: usize,
        warmup: Duration,
    ) -> anyhow::Result<()> {
        let mut workload = Workload::new(scenario, 0, self.shard)?;
        let ops: Arc<Vec<(OpKind, String)>> =
            Arc::new(workload.ops.iter().map(|o| (o.kind, o.target.clone())).collect());
        let permits = Arc::new(Semaphore::new(max_in_flight));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let mut t = 0.0f64;
        let mut n = 0usize;
        let mut closed_second = 0u64;
        while let Some(rate) = rate_at(stages, t) {
            if rate <= 0.0 {
                // Nothing to send at this instant: look again a millisecond later.
                t += 0.001;
                continue;
            }
            let intended = start + Duration::from_secs_f64(t);
            pace_until(intended).await;
            let since = intended - start;
            let measured = since.checked_sub(warmup);
            if let Some(at) = measured {
                let s = at.as_secs();
                if s > closed_second {
                    let mut stats = lock(&self.stats);
                    for c in closed_second..s {
                        stats.close_second(c);
                    }
                    closed_second = s;
                }
            }
            {
                let mut p = lock(&self.progress);
                p.elapsed = since;
                p.target_rate = rate;
            }
            let request = workload.next_request();
            match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    if let Some(at) = measured {
                        lock(&self.stats).arrival(at, false);
                    }
                    let client = self.clients[n % self.clients.len()].clone();
                    let (stats, ops) = (self.stats.clone(), ops.clone());
                    tasks.spawn(async move {
                        let sent = Instant::now();
                        let (kind, target) = &ops[request.op];
                        let op = request.op;
                        let code = execute(&client, *kind, target, request).await;
                        let done = Instant::now();
                        drop(permit);
                        if let Some(at) = measured {
                            lock(&stats).response(op, at, done - intended, done - sent, sent - intended, code, None);
                        }
                    });
                }
                Err(_) => {
                    if let Some(at) = measured {
                        lock(&self.stats).arrival(at, true);
                    }
                }
            }
            while tasks.try_join_next().is_some() {}
            n += 1;
            t += 1.0 / rate;
        }
        while tasks.join_next().await.is_some() {}
        let total = scenario.duration().saturating_sub(warmup).as_secs();
        let mut stats = lock(&self.stats);
        for c in closed_second..=total {
            stats.close_second(c);
        }
        Ok(())
    }

    async fn closed(
        &self,
        scenario: &Scenario,
        stages: &[ClosedStage],
        think: Duration,
        warmup: Duration,
    ) -> anyhow::Result<()> {
        let max = stages.iter().map(|s| s.concurrency).max().unwrap_or(1);
        let stages: Arc<Vec<ClosedStage>> = Arc::new(stages.to_vec());
        let start = Instant::now();
        let mut workers = tokio::task::JoinSet::new();
        for w in 0..max {
            let mut workload = Workload::new(scenario, w as u64 + 1, self.shard)?;
            let ops: Vec<(OpKind, String)> = workload.ops.iter().map(|o| (o.kind, o.target.clone())).collect();
            let client = self.clients[w % self.clients.len()].clone();
            let (stats, stages) = (self.stats.clone(), stages.clone());
            workers.spawn(async move {
                // Mean service time so far: the interval this client expects between
                // requests (plus think time), for the coordinated-omission correction.
                let (mut total, mut count) = (Duration::ZERO, 0u32);
                loop {
                    let t = start.elapsed().as_secs_f64();
                    let Some(concurrency) = concurrency_at(&stages, t) else {
                        break;
                    };
                    if w >= concurrency {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    let request = workload.next_request();
                    let (kind, target) = &ops[request.op];
                    let op = request.op;
                    let sent = Instant::now();
                    let code = execute(&client, *kind, target, request).await;
                    let latency = sent.elapsed();
                    total += latency;
                    count += 1;
                    if let Some(at) = (sent - start).checked_sub(warmup) {
                        let expected = think + total / count;
                        let mut s = lock(&stats);
                        s.arrival(at, false);
                        s.response(op, at, latency, latency, Duration::ZERO, code, Some(expected));
                    }
                    if !think.is_zero() {
                        tokio::time::sleep(think).await;
                    }
                }
            });
        }
        // Close seconds as they pass, for the per-second percentiles.
        let measure = scenario.duration().saturating_sub(warmup).as_secs();
        let mut closed_second = 0;
        while !workers.is_empty() {
            tokio::select! {
                _ = workers.join_next() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            let elapsed = start.elapsed();
            lock(&self.progress).elapsed = elapsed;
            if let Some(at) = elapsed.checked_sub(warmup) {
                let mut s = lock(&self.stats);
                while closed_second < at.as_secs().min(measure) {
                    s.close_second(closed_second);
                    closed_second += 1;
                }
            }
        }
        let mut s = lock(&self.stats);
        while closed_second <= measure {
            s.close_second(closed_second);
            closed_second += 1;
        }
        Ok(())
    }
}
