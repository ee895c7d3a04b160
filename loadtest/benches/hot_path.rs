//! The generator's per-request work outside the network: schedule the arrival, choose
//! the operation, key and size, and record the result. Budget: under 2 us.
//!
//!   cargo bench -p loadtest --bench hot_path

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use loadtest::engine::rate_at;
use loadtest::scenario::{Load, Scenario};
use loadtest::shard::Shard;
use loadtest::stats::{Answer, Stats};
use loadtest::workload::Workload;

const SCENARIO: &str = "name: bench\nseed: 1\n\
load: {model: open, stages: [{duration: 10s, rate: 1000, ramp_to: 50000}, {duration: 50s, rate: 50000}]}\n\
keyspaces: {users: {prefix: 'user:', count: 1000000, distribution: {type: zipfian, theta: 0.99}}}\n\
operations:\n  - {op: keyvalue.get, weight: 80, keys: users}\n  - {op: keyvalue.set, weight: 20, keys: users, value_size: {min: 64, max: 512}}\n";

fn hot_path(c: &mut Criterion) {
    let scenario = Scenario::parse(SCENARIO, Path::new("bench.yaml")).expect("bench scenario");
    let Load::Open { stages, .. } = &scenario.load else {
        unreachable!("open model above")
    };
    let mut workload = Workload::new(&scenario, 0, Shard::WHOLE).expect("workload");
    let mut stats = Stats::new(2);
    let mut t = 0.0f64;
    let mut n = 0u64;
    c.bench_function("loadtest/schedule_choose_record", |b| {
        b.iter(|| {
            // schedule
            let rate = rate_at(stages, t).unwrap_or(1000.0);
            t = (t + 1.0 / rate) % 60.0;
            // choose
            let request = workload.next_request();
            // record (a plausible 100-2000 us latency)
            n += 1;
            let latency = Duration::from_micros(100 + n % 1900);
            let at = Duration::from_secs_f64(t);
            stats.arrival(0, at, false);
            stats.response(Answer {
                op: request.op,
                at,
                corrected: latency,
                service: latency,
                lag: Duration::from_micros(3),
                code: "OK",
                expected: None,
            });
            black_box(&request);
        })
    });
}

/// A `grpc.unary` request drawn with its template rendered: JSON with two placeholders
/// into a `DynamicMessage`, encoded. Not on the typed path above; its own cost.
fn grpc_template(c: &mut Criterion) {
    let proto = concat!(env!("CARGO_MANIFEST_DIR"), "/../proto");
    let yaml = format!(
        "name: bench\nseed: 1\ngrpc: {{protos: ['{proto}/prism/keyvalue/v1/keyvalue.proto'], import_paths: ['{proto}']}}\n\
         load: {{model: open, stages: [{{duration: 10s, rate: 1000}}]}}\n\
         keyspaces: {{users: {{prefix: 'user:', count: 1000000}}}}\n\
         operations:\n  - {{op: grpc.unary, method: prism.keyvalue.v1.KeyValueBasic/Set, keys: users, request: {{key: '{{key}}', value: '{{bytes:128}}'}}}}\n"
    );
    let scenario = Scenario::parse(&yaml, Path::new("bench.yaml")).expect("bench scenario");
    let mut workload = Workload::new(&scenario, 0, Shard::WHOLE).expect("workload");
    c.bench_function("loadtest/grpc_unary_render", |b| {
        b.iter(|| black_box(workload.next_request()))
    });
}

criterion_group!(benches, hot_path, grpc_template);
criterion_main!(benches);
