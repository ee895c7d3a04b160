//! The load engine. Open model: a pacer schedules each arrival at its intended time
//! (rate ramps linearly within a stage) and latency counts from that time, so a stalled
//! server shows in the percentiles; arrivals beyond `max_in_flight` are dropped and
//! counted. Closed model: `concurrency` clients in a loop, corrected by the expected
//! interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use prism_proxy::client::PrismClient;
use prism_proxy::interfaces::{
    AggregateFunction, Aggregation, Event, EventColumns, FieldColumn, KeyValueBasic, KeyValueBatch, KeyValueScan,
    PubSubBasic, Query, QueueBasic, TagColumn, TimeSeriesBasic,
};
use prism_proxy::status::{code_name, code_of};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::scenario::{ClosedStage, Load, OpenStage, Scenario};
use crate::shard::Shard;
use crate::stats::{Answer, Recorder};
use crate::workload::{OpKind, Request, Workload};

/// Live counters for the progress display.
#[derive(Default)]
pub struct Progress {
    pub elapsed: Duration,
    pub target_rate: f64,
    /// Requests sent and not yet answered (open model).
    pub in_flight: Option<usize>,
}

pub struct Engine {
    pub clients: Vec<PrismClient>,
    pub shard: Shard,
    /// Where this scenario's results go in the run's stats.
    pub stats: Recorder,
    pub progress: Arc<Mutex<Progress>>,
    /// Set to stop the run early (an `abort_on_fail` threshold failed): no request is sent
    /// after it, the ones in flight are awaited.
    pub abort: Arc<AtomicBool>,
    /// `trace_sample`: client spans with `traceparent` on a share of the requests.
    pub tracing: Option<crate::live::PartTracing>,
}

/// What the engine needs to send one kind of request.
#[derive(Debug, Clone)]
pub struct OpPlan {
    /// The operation as reported (`keyvalue.get`, `grpc.unary:pkg.Svc/Get`).
    pub name: String,
    pub kind: OpKind,
    /// Topic, queue or stream; key prefix for scans.
    pub target: String,
    pub batch: u32,
    /// `grpc.*`: the method and its metadata.
    pub call: Option<crate::grpc::SharedCall>,
    /// `grpc.server_stream`: the reported operations of its time to first message and
    /// per-message latency.
    pub stream_metrics: Option<(usize, usize)>,
}

/// Where a server stream records its messages: the run's stats, unless the request was
/// sent during the warm-up.
struct Sink<'a> {
    stats: &'a Recorder,
    /// The request's operation.
    op: usize,
    measured: bool,
}

/// The zero of the timestamps publishers put in pub/sub payloads.
fn clock_zero() -> Instant {
    static ZERO: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ZERO.get_or_init(Instant::now)
}

/// The wall clock in Unix milliseconds (event timestamps, `{now_ms}` of templates).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Sends one request, in a client span with `traceparent` when it is in the trace
/// sample; `OK` or the gRPC status name.
async fn execute(
    client: &PrismClient,
    plan: &OpPlan,
    request: Request,
    sink: Sink<'_>,
    tracing: Option<&crate::live::PartTracing>,
) -> &'static str {
    let Some(traced) = tracing.and_then(|t| t.tracing.sample(&t.scenario, &plan.name)) else {
        return send(client, plan, request, sink).await;
    };
    let code = match client.clone().with_metadata("traceparent", &traced.traceparent) {
        Ok(traced_client) => send(&traced_client, plan, request, sink).await,
        Err(_) => send(client, plan, request, sink).await,
    };
    traced.end(code);
    code
}

/// Sends one request; `OK` or the gRPC status name.
async fn send(client: &PrismClient, plan: &OpPlan, request: Request, sink: Sink<'_>) -> &'static str {
    let target = || plan.target.clone();
    if request.unrendered {
        return TEMPLATE_ERROR;
    }
    let result = match plan.kind {
        OpKind::Get => client.get(request.key).await.map(drop),
        OpKind::Set => client.set(request.key, request.value).await,
        OpKind::Delete => client.delete(request.key).await.map(drop),
        OpKind::Exists => client.exists(request.key).await.map(drop),
        OpKind::Scan => client.scan(Bytes::from(target()), plan.batch, None).await.map(drop),
        OpKind::BatchGet => {
            let keys = std::iter::once(request.key).chain(request.more_keys).collect();
            client.batch_get(keys).await.map(drop)
        }
        OpKind::BatchSet => {
            let entries = std::iter::once(request.key)
                .chain(request.more_keys)
                .map(|k| (k, request.value.clone()))
                .collect();
            client.batch_set(entries).await.map(drop)
        }
        OpKind::Publish => {
            // The first 8 bytes carry the send time, for publish-to-delivery latency.
            let sent = (Instant::now() - clock_zero()).as_nanos() as u64;
            let mut payload = sent.to_be_bytes().to_vec();
            payload.extend_from_slice(&request.value);
            client.publish(target(), Bytes::from(payload)).await.map(drop)
        }
        OpKind::Enqueue => client.enqueue(target(), request.value).await.map(drop),
        OpKind::ReceiveAck => {
            match client
                .receive(target(), plan.batch, Duration::from_secs(30), Duration::ZERO)
                .await
            {
                Ok(messages) => {
                    let mut result = Ok(());
                    for m in messages {
                        if let Err(e) = client.ack(target(), m.receipt).await {
                            result = Err(e);
                        }
                    }
                    result
                }
                Err(e) => Err(e),
            }
        }
        OpKind::Append => {
            let now = now_ms();
            let events = (0..plan.batch)
                .map(|i| Event {
                    timestamp_ms: now,
                    tags: [("source".to_string(), format!("loadtest-{}", i as usize % SOURCES))].into(),
                    fields: [("bytes".to_string(), request.value.len() as f64)].into(),
                })
                .collect();
            client.append(target(), events).await.map(drop)
        }
        OpKind::AppendColumns => {
            // The same events as `Append`'s, built as columns.
            let n = plan.batch as usize;
            let columns = EventColumns {
                timestamps_ms: vec![now_ms(); n],
                tags: vec![TagColumn {
                    name: "source".into(),
                    dictionary: (0..SOURCES.min(n)).map(|i| format!("loadtest-{i}")).collect(),
                    values: (0..n).map(|i| (i % SOURCES) as u32 + 1).collect(),
                }],
                fields: vec![FieldColumn {
                    name: "bytes".into(),
                    values: vec![request.value.len() as f64; n],
                    present: Vec::new(),
                }],
            };
            client.append_columns(target(), columns).await.map(drop)
        }
        OpKind::Query => {
            let now = now_ms();
            let query = Query {
                start_ms: now - 10_000,
                end_ms: now + 1,
                filters: Default::default(),
                limit: 100,
            };
            client.query(target(), query).await.map(drop)
        }
        OpKind::GrpcUnary | OpKind::GrpcServerStream => match &plan.call {
            Some(call) if plan.kind == OpKind::GrpcUnary => client
                .call_encoded(&call.method.path, &request.value, &call.metadata)
                .await
                .map(drop),
            Some(call) => read_stream(client, call, plan.stream_metrics, request.value, sink).await,
            None => Err(prism_proxy::BackendError::Internal("no descriptors".into())),
        },
        // Given weight 0 on the engine's side (crate::http::split); never drawn here.
        OpKind::HttpGet | OpKind::HttpPost => Err(prism_proxy::BackendError::Unimplemented(
            "http operations run on goose".into(),
        )),
        OpKind::Aggregate => {
            let now = now_ms();
            let aggregation = Aggregation {
                start_ms: now - 60_000,
                end_ms: now + 1,
                filters: Default::default(),
                bucket_ms: 10_000,
                metric: "bytes".into(),
                function: AggregateFunction::P99,
                group_by: vec!["source".into()],
            };
            client.aggregate(target(), aggregation).await.map(drop)
        }
    };
    match result {
        Ok(()) => "OK",
        Err(e) => code_name(code_of(&e)),
    }
}

/// Values of the `source` tag of appended events.
const SOURCES: usize = 4;

/// The status counted for a request whose template did not render: it is not sent.
pub const TEMPLATE_ERROR: &str = "TEMPLATE_ERROR";

/// Opens a server stream and reads it to its end, or to `call.messages`: the time to
/// the first message and each message's time after the one before go to `sink`.
async fn read_stream(
    client: &PrismClient,
    call: &crate::grpc::Call,
    metrics: Option<(usize, usize)>,
    message: Bytes,
    sink: Sink<'_>,
) -> prism_proxy::BackendResult<()> {
    let opened = Instant::now();
    let mut stream = client
        .server_stream_encoded(&call.method.path, message, &call.metadata)
        .await?;
    if sink.measured {
        sink.stats.lock().stream(sink.op, true);
    }
    let read = read_messages(&mut stream, call, metrics, opened, &sink).await;
    if sink.measured {
        sink.stats.lock().stream(sink.op, false);
    }
    // Dropping the stream cancels it when messages are left.
    read
}

/// Reads `stream` to its end or to `call.messages`, timing each message into `sink`.
async fn read_messages(
    stream: &mut (impl futures::Stream<Item = prism_proxy::BackendResult<Bytes>> + Unpin),
    call: &crate::grpc::Call,
    metrics: Option<(usize, usize)>,
    opened: Instant,
    sink: &Sink<'_>,
) -> prism_proxy::BackendResult<()> {
    let (mut last, mut read) = (opened, 0u32);
    while call.messages.is_none_or(|n| read < n) {
        match stream.next().await {
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e),
            None => break,
        }
        let now = Instant::now();
        if let Some((first_op, message_op)) = metrics.filter(|_| sink.measured) {
            let mut stats = sink.stats.lock();
            if read == 0 {
                stats.sample(first_op, now - opened);
            }
            stats.sample(message_op, now - last);
        }
        last = now;
        read += 1;
    }
    Ok(())
}

/// Whether the engine has gRPC operations to send (HTTP ones run on goose).
fn has_grpc_operations(scenario: &Scenario) -> bool {
    scenario
        .operations
        .iter()
        .any(|o| o.weight > 0 && !crate::workload::is_http(&o.op))
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
        // The epsilon absorbs the rounding of summed 1/rate steps at a stage end.
        if t + 1e-9 < start + d {
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
    /// Runs this engine's shard of `scenario`; the seconds still open at its end are
    /// left for the caller to close (other scenarios of the run may still be running).
    pub async fn run(&self, scenario: &Scenario) -> anyhow::Result<()> {
        let scenario = &self.shard.apply(scenario);
        let mut subscribers = self.subscribe(scenario).await?;
        let result = match &scenario.load {
            _ if !has_grpc_operations(scenario) => self.keep_time(scenario).await,
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
        };
        // Let the last deliveries arrive, then stop listening.
        tokio::time::sleep(Duration::from_millis(200)).await;
        subscribers.abort_all();
        result
    }

    /// Starts the subscribers of every `pubsub.publish` with `subscribers`; each records
    /// publish-to-delivery latency as the synthetic operation after the scenario's own.
    async fn subscribe(&self, scenario: &Scenario) -> anyhow::Result<tokio::task::JoinSet<()>> {
        let mut tasks = tokio::task::JoinSet::new();
        let delivery_op = scenario.operations.len();
        let measure_from = clock_zero().max(Instant::now()) + scenario.warmup();
        let mut n = 0;
        for o in scenario.operations.iter().filter(|o| o.op == "pubsub.publish") {
            let topic = o.keys.clone().unwrap_or_else(|| "loadtest".into());
            for _ in 0..o.subscribers.unwrap_or(0) {
                let client = &self.clients[n % self.clients.len()];
                n += 1;
                let mut subscription = client.subscribe(topic.clone()).await?;
                let stats = self.stats.clone();
                tasks.spawn(async move {
                    while let Some(Ok(message)) = subscription.messages.next().await {
                        let Some(stamp) = message.payload.get(..8) else {
                            continue;
                        };
                        let nanos = u64::from_be_bytes(stamp.try_into().unwrap_or_default());
                        let sent = clock_zero() + Duration::from_nanos(nanos);
                        let latency = Instant::now().saturating_duration_since(sent);
                        if sent >= measure_from {
                            stats.lock().sample(delivery_op, latency);
                        }
                    }
                });
            }
        }
        Ok(tasks)
    }

    /// With nothing to send (only HTTP operations), still keeps time while goose works,
    /// until the run ends or is stopped.
    async fn keep_time(&self, scenario: &Scenario) -> anyhow::Result<()> {
        let mut timer = tokio::task::JoinSet::new();
        let (end, abort) = (Instant::now() + scenario.duration(), self.abort.clone());
        timer.spawn(async move {
            while Instant::now() < end && !abort.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(50).min(end.saturating_duration_since(Instant::now()))).await;
            }
        });
        self.tick_until_done(timer, scenario, Instant::now()).await;
        Ok(())
    }

    async fn open(
        &self,
        scenario: &Scenario,
        stages: &[OpenStage],
        max_in_flight: usize,
        warmup: Duration,
    ) -> anyhow::Result<()> {
        let mut workload = Workload::new(scenario, 0, self.shard)?;
        let ops: Arc<Vec<OpPlan>> = Arc::new(workload.plans());
        let permits = Arc::new(Semaphore::new(max_in_flight));
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let mut t = 0.0f64;
        let mut n = 0usize;
        let mut closed_second = 0u64;
        while let Some(rate) = rate_at(stages, t) {
            if self.abort.load(Ordering::Relaxed) {
                break;
            }
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
                    self.stats.lock().close_until(s);
                    closed_second = s;
                }
            }
            {
                let mut p = self.progress.lock();
                p.elapsed = since;
                p.target_rate = rate;
                p.in_flight = Some(max_in_flight - permits.available_permits());
            }
            let request = workload.next_request();
            match permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    if let Some(at) = measured {
                        self.stats.lock().arrival(at, false);
                    }
                    let client = self.clients[n % self.clients.len()].clone();
                    let (stats, ops, tracing) = (self.stats.clone(), ops.clone(), self.tracing.clone());
                    tasks.spawn(async move {
                        let sent = Instant::now();
                        let op = request.op;
                        let sink = Sink {
                            stats: &stats,
                            op,
                            measured: measured.is_some(),
                        };
                        let code = execute(&client, &ops[op], request, sink, tracing.as_ref()).await;
                        let done = Instant::now();
                        drop(permit);
                        if let Some(at) = measured {
                            stats.lock().response(Answer {
                                op,
                                at,
                                corrected: done - intended,
                                service: done - sent,
                                lag: sent - intended,
                                code,
                                expected: None,
                            });
                        }
                    });
                }
                Err(_) => {
                    if let Some(at) = measured {
                        self.stats.lock().arrival(at, true);
                    }
                }
            }
            while tasks.try_join_next().is_some() {}
            n += 1;
            t += 1.0 / rate;
        }
        // The seconds left open are closed by the caller, once every scenario is done.
        while tasks.join_next().await.is_some() {}
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
            let ops = workload.plans();
            let client = self.clients[w % self.clients.len()].clone();
            let (stats, stages, abort) = (self.stats.clone(), stages.clone(), self.abort.clone());
            let tracing = self.tracing.clone();
            workers.spawn(async move {
                // Mean service time so far: the interval this client expects between
                // requests (plus think time), for the coordinated-omission correction.
                let (mut total, mut count) = (Duration::ZERO, 0u32);
                loop {
                    let t = start.elapsed().as_secs_f64();
                    let Some(concurrency) = concurrency_at(&stages, t) else {
                        break;
                    };
                    if abort.load(Ordering::Relaxed) {
                        break;
                    }
                    if w >= concurrency {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                    let request = workload.next_request();
                    let op = request.op;
                    let sent = Instant::now();
                    let sink = Sink {
                        stats: &stats,
                        op,
                        measured: sent - start >= warmup,
                    };
                    let code = execute(&client, &ops[op], request, sink, tracing.as_ref()).await;
                    let latency = sent.elapsed();
                    total += latency;
                    count += 1;
                    if let Some(at) = (sent - start).checked_sub(warmup) {
                        let expected = think + total / count;
                        let mut s = stats.lock();
                        s.arrival(at, false);
                        s.response(Answer {
                            op,
                            at,
                            corrected: latency,
                            service: latency,
                            lag: Duration::ZERO,
                            code,
                            expected: Some(expected),
                        });
                    }
                    if !think.is_zero() {
                        tokio::time::sleep(think).await;
                    }
                }
            });
        }
        self.tick_until_done(workers, scenario, start).await;
        Ok(())
    }

    /// Until every worker is done: moves the progress display and closes the seconds as
    /// they pass (for the per-second percentiles); the caller closes the rest.
    async fn tick_until_done(&self, mut workers: tokio::task::JoinSet<()>, scenario: &Scenario, start: Instant) {
        let warmup = scenario.warmup();
        let measure = scenario.duration().saturating_sub(warmup).as_secs();
        while !workers.is_empty() {
            tokio::select! {
                _ = workers.join_next() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
            let elapsed = start.elapsed();
            self.progress.lock().elapsed = elapsed;
            if let Some(at) = elapsed.checked_sub(warmup) {
                self.stats.lock().close_until(at.as_secs().min(measure));
            }
        }
    }
}
