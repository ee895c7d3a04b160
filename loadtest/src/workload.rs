//! Turns a scenario's operations and keyspaces into concrete requests, deterministically
//! from a seed: which operation, which key, how large a value.

use bytes::Bytes;
use rand::distr::weighted::WeightedIndex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution as _, Zipf};

use crate::scenario::{Distribution, Scenario, ValueSize};
use crate::shard::Shard;

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// Index into [`Workload::ops`].
    pub op: usize,
    pub key: Bytes,
    pub value: Bytes,
    /// More keys, for batch operations.
    pub more_keys: Vec<Bytes>,
    /// `grpc.*`: the request template did not render (the request is not sent; the
    /// template rendered once when the scenario was read, so only values a draw brings,
    /// such as a feed's key in a number field, get here).
    pub unrendered: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Get,
    Set,
    Delete,
    Exists,
    Scan,
    BatchGet,
    BatchSet,
    Publish,
    Enqueue,
    ReceiveAck,
    Append,
    AppendColumns,
    Query,
    Aggregate,
    /// HTTP operations run on goose (crate::http), not on the gRPC engine.
    HttpGet,
    HttpPost,
    /// Any gRPC method, from its descriptors (crate::grpc).
    GrpcUnary,
    GrpcServerStream,
}

/// Every operation a scenario may name: the one list the parser and validation use.
pub const OPERATIONS: &[(&str, OpKind)] = &[
    ("keyvalue.get", OpKind::Get),
    ("keyvalue.set", OpKind::Set),
    ("keyvalue.delete", OpKind::Delete),
    ("keyvalue.exists", OpKind::Exists),
    ("keyvalue.scan", OpKind::Scan),
    ("keyvalue.batch_get", OpKind::BatchGet),
    ("keyvalue.batch_set", OpKind::BatchSet),
    ("pubsub.publish", OpKind::Publish),
    ("queue.enqueue", OpKind::Enqueue),
    ("queue.receive_ack", OpKind::ReceiveAck),
    ("timeseries.append", OpKind::Append),
    ("timeseries.append_columns", OpKind::AppendColumns),
    ("timeseries.query", OpKind::Query),
    ("timeseries.aggregate", OpKind::Aggregate),
    ("http.get", OpKind::HttpGet),
    ("http.post", OpKind::HttpPost),
    ("grpc.unary", OpKind::GrpcUnary),
    ("grpc.server_stream", OpKind::GrpcServerStream),
];

/// Whether the operation named `op` is an HTTP one (run on goose).
pub fn is_http(op: &str) -> bool {
    op.starts_with("http.")
}

/// Whether the operation named `op` calls a gRPC method from its descriptors.
pub fn is_grpc(op: &str) -> bool {
    op.starts_with("grpc.")
}

impl OpKind {
    pub fn parse(name: &str) -> Option<OpKind> {
        OPERATIONS.iter().find(|(n, _)| *n == name).map(|(_, kind)| *kind)
    }

    /// Every operation name, for messages.
    pub fn names() -> Vec<&'static str> {
        OPERATIONS.iter().map(|(n, _)| *n).collect()
    }

    /// The Prism interface the operation calls (none for HTTP).
    pub fn interface(self) -> Option<prism_proxy::Interface> {
        use OpKind::*;
        use prism_proxy::Interface as I;
        Some(match self {
            Get | Set | Delete | Exists => I::KeyvalueBasic,
            Scan => I::KeyvalueScan,
            BatchGet | BatchSet => I::KeyvalueBatch,
            Publish => I::PubsubBasic,
            Enqueue | ReceiveAck => I::QueueBasic,
            Append | AppendColumns | Query | Aggregate => I::TimeseriesBasic,
            HttpGet | HttpPost | GrpcUnary | GrpcServerStream => return None,
        })
    }
}

#[derive(Clone)]
pub struct OpSpec {
    pub name: String,
    pub kind: OpKind,
    /// Topic, queue or stream name for non key-value operations; the key prefix for scans.
    pub target: String,
    /// Keys per batch, page size, messages per receive, events per append.
    pub batch: u32,
    keys: Option<KeyChooser>,
    size: Option<ValueSize>,
    /// `grpc.*`: the method and request template.
    call: Option<crate::grpc::SharedCall>,
    /// `grpc.server_stream`: where its first-message and per-message latencies go.
    stream_metrics: Option<(usize, usize)>,
    /// Requests drawn of this operation: `{n}` of its template.
    drawn: u64,
}

#[derive(Clone)]
enum Chooser {
    Uniform,
    Zipf(Zipf<f64>),
    Sequential(u64),
}

#[derive(Clone)]
struct KeyChooser {
    prefix: String,
    /// Rows of `keyspaces.<k>.file`, drawn by index instead of generating `<prefix><n>`.
    feed: Option<crate::scenario::feed::Feed>,
    /// First key of this shard's slice.
    offset: u64,
    count: u64,
    chooser: Chooser,
}

impl KeyChooser {
    fn next(&mut self, rng: &mut StdRng) -> u64 {
        match &mut self.chooser {
            Chooser::Uniform => rng.random_range(0..self.count),
            // Zipf yields 1..=count; rank 1 is the most popular key.
            Chooser::Zipf(z) => (z.sample(rng) as u64).clamp(1, self.count) - 1,
            Chooser::Sequential(next) => {
                let k = *next;
                *next = (*next + 1) % self.count;
                k
            }
        }
    }
}

#[derive(Clone)]
pub struct Workload {
    pub ops: Vec<OpSpec>,
    weights: WeightedIndex<u32>,
    rng: StdRng,
    /// Random bytes values are cut from.
    pool: Bytes,
}

impl Workload {
    /// `stream` makes one scenario yield independent sequences (per worker); a shard
    /// draws only from its slice of each keyspace, with its own sequence.
    pub fn new(scenario: &Scenario, stream: u64, shard: Shard) -> anyhow::Result<Workload> {
        let stream = stream ^ (u64::from(shard.index) << 32);
        let mut rng = StdRng::seed_from_u64(scenario.seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut ops = Vec::new();
        for (i, o) in scenario.operations.iter().enumerate() {
            let kind = OpKind::parse(&o.op).ok_or_else(|| anyhow::anyhow!("unknown operation {}", o.op))?;
            let keyed = o.op.starts_with("keyvalue.") || is_http(&o.op) || is_grpc(&o.op);
            if is_grpc(&o.op) && o.call.is_none() {
                anyhow::bail!("{}: the method's descriptors were not loaded", o.reported_name());
            }
            let keys = match o.keys.as_ref().and_then(|k| scenario.keyspaces.get(k)) {
                Some(ks) if keyed => {
                    let (offset, count) = shard.keys(ks.count);
                    Some(KeyChooser {
                        prefix: ks.prefix.clone(),
                        feed: ks.feed.clone(),
                        offset,
                        count,
                        chooser: match ks.distribution {
                            Distribution::Uniform => Chooser::Uniform,
                            Distribution::Zipfian { theta } => Chooser::Zipf(Zipf::new(count as f64, theta)?),
                            Distribution::Sequential => Chooser::Sequential(0),
                        },
                    })
                }
                _ => None,
            };
            let target = match o.keys.as_ref().and_then(|k| scenario.keyspaces.get(k)) {
                Some(ks) if keyed => ks.prefix.clone(),
                _ => o.keys.clone().unwrap_or_else(|| "loadtest".into()),
            };
            ops.push(OpSpec {
                name: o.reported_name(),
                kind,
                target,
                batch: o.batch.unwrap_or(match kind {
                    OpKind::Scan => 100,
                    OpKind::BatchGet | OpKind::BatchSet => 10,
                    _ => 1,
                }),
                keys,
                size: o.value_size.clone(),
                call: o.call.clone(),
                stream_metrics: scenario.stream_metrics(i),
                drawn: 0,
            });
        }
        let weights = WeightedIndex::new(scenario.operations.iter().map(|o| o.weight))?;
        let max = scenario
            .operations
            .iter()
            .filter_map(|o| match o.value_size {
                Some(ValueSize::Fixed(n)) | Some(ValueSize::Uniform { max: n, .. }) => Some(n),
                None => None,
            })
            .max()
            .unwrap_or(128)
            .max(128);
        let pool: Vec<u8> = (0..max).map(|_| rng.random()).collect();
        Ok(Workload {
            ops,
            weights,
            rng,
            pool: Bytes::from(pool),
        })
    }

    /// What the engine needs per operation.
    pub fn plans(&self) -> Vec<crate::engine::OpPlan> {
        self.ops
            .iter()
            .map(|o| crate::engine::OpPlan {
                name: o.name.clone(),
                kind: o.kind,
                target: o.target.clone(),
                batch: o.batch,
                call: o.call.clone(),
                stream_metrics: o.stream_metrics,
            })
            .collect()
    }

    pub fn next_request(&mut self) -> Request {
        let op = self.weights.sample(&mut self.rng);
        let spec = &mut self.ops[op];
        let (kind, batch, size) = (spec.kind, spec.batch, spec.size.clone());
        let rng = &mut self.rng;
        // A key, and the value its feed row gives (if any).
        let mut draw = || match &mut spec.keys {
            Some(chooser) => {
                let n = chooser.offset + chooser.next(rng);
                match &chooser.feed {
                    Some(feed) => {
                        let row = &feed.0[n as usize % feed.0.len()];
                        (row.key.clone(), row.value.clone())
                    }
                    None => (Bytes::from(format!("{}{n}", chooser.prefix)), None),
                }
            }
            None => (Bytes::new(), None),
        };
        let (key, fed) = draw();
        let more_keys = match kind {
            OpKind::BatchGet | OpKind::BatchSet => (1..batch).map(|_| draw().0).collect(),
            _ => Vec::new(),
        };
        if let Some(call) = &spec.call {
            let n = spec.drawn;
            spec.drawn += 1;
            let rendered = call.template.render(&mut crate::grpc::Vars {
                key: &key,
                n,
                rng: &mut self.rng,
            });
            let (value, unrendered) = match rendered {
                Ok(message) => (message, false),
                Err(_) => (Bytes::new(), true),
            };
            return Request {
                op,
                key,
                value,
                more_keys,
                unrendered,
            };
        }
        let size = match size {
            Some(ValueSize::Fixed(n)) => n,
            Some(ValueSize::Uniform { min, max }) => self.rng.random_range(min..=max),
            None => 128,
        };
        Request {
            op,
            key,
            value: fed.unwrap_or_else(|| self.pool.slice(0..size.min(self.pool.len()))),
            more_keys,
            unrendered: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The operation names a scenario uses are the proxy's own (`prism_proxy::Operation`,
    /// as in its metrics and spans), except HTTP ones and the one composite, whose parts
    /// are the proxy's.
    #[test]
    fn operation_names_are_the_proxys() {
        use prism_proxy::Operation;
        for (name, _) in OPERATIONS {
            if is_http(name) || is_grpc(name) {
                continue;
            }
            if *name == "queue.receive_ack" {
                assert!(Operation::parse("queue.receive").is_some() && Operation::parse("queue.ack").is_some());
                continue;
            }
            assert!(Operation::parse(name).is_some(), "{name} is no operation of the proxy");
        }
    }

    fn scenario(distribution: &str) -> Scenario {
        let yaml = format!(
            "name: t\nseed: 7\nload: {{model: closed, stages: [{{duration: 1s, concurrency: 1}}]}}\n\
             keyspaces: {{k: {{prefix: 'k:', count: 1000, distribution: {distribution}}}}}\n\
             operations:\n  - {{op: keyvalue.get, weight: 3, keys: k}}\n  - {{op: keyvalue.set, weight: 1, keys: k, value_size: {{min: 10, max: 20}}}}\n"
        );
        Scenario::parse(&yaml, std::path::Path::new("t.yaml")).unwrap()
    }

    #[test]
    fn same_seed_same_sequence() {
        let s = scenario("{type: uniform}");
        let a: Vec<_> = {
            let mut w = Workload::new(&s, 0, Shard::WHOLE).unwrap();
            (0..100)
                .map(|_| w.next_request())
                .map(|r| (r.op, r.key, r.value.len()))
                .collect()
        };
        let b: Vec<_> = {
            let mut w = Workload::new(&s, 0, Shard::WHOLE).unwrap();
            (0..100)
                .map(|_| w.next_request())
                .map(|r| (r.op, r.key, r.value.len()))
                .collect()
        };
        assert_eq!(a, b);
        let c: Vec<_> = {
            let mut w = Workload::new(&s, 1, Shard::WHOLE).unwrap();
            (0..100)
                .map(|_| w.next_request())
                .map(|r| (r.op, r.key, r.value.len()))
                .collect()
        };
        assert_ne!(a, c, "another stream differs");
    }

    #[test]
    fn weights_and_sizes_are_respected() {
        let mut w = Workload::new(&scenario("{type: uniform}"), 0, Shard::WHOLE).unwrap();
        let reqs: Vec<Request> = (0..20_000).map(|_| w.next_request()).collect();
        let gets = reqs.iter().filter(|r| r.op == 0).count() as f64 / reqs.len() as f64;
        assert!((gets - 0.75).abs() < 0.02, "get share {gets}");
        assert!(
            reqs.iter()
                .filter(|r| r.op == 1)
                .all(|r| (10..=20).contains(&r.value.len()))
        );
    }

    /// Keys of a feed file come as written, in file order when sequential, each shard
    /// from its own slice; a row's value is what sets send.
    #[test]
    fn feed_rows_are_drawn_by_index_with_their_values() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("users.csv"),
            "key,value\nalice,A\nbob,B\ncarol,\ndave,D\n",
        )
        .unwrap();
        let yaml = "name: t\nload: {model: closed, stages: [{duration: 1s, concurrency: 1}]}\n\
                    keyspaces: {u: {file: users.csv, distribution: {type: sequential}}}\n\
                    operations: [{op: keyvalue.set, keys: u}]\n";
        let s = Scenario::parse(yaml, &dir.path().join("s.yaml")).unwrap();
        assert_eq!(s.keyspaces["u"].count, 4, "count from the file");
        let mut w = Workload::new(&s, 0, Shard::WHOLE).unwrap();
        let drawn: Vec<(Bytes, Bytes)> = (0..5).map(|_| w.next_request()).map(|r| (r.key, r.value)).collect();
        let keys: Vec<&[u8]> = drawn.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, [&b"alice"[..], b"bob", b"carol", b"dave", b"alice"]);
        assert_eq!(drawn[0].1, Bytes::from_static(b"A"));
        assert_eq!(drawn[2].1, Bytes::new(), "an empty value column is an empty value");
        let shard = Shard { index: 1, count: 2 };
        let mut w = Workload::new(&s, 0, shard).unwrap();
        let second_half: Vec<Bytes> = (0..2).map(|_| w.next_request().key).collect();
        assert_eq!(second_half, [Bytes::from_static(b"carol"), Bytes::from_static(b"dave")]);
    }

    #[test]
    fn zipfian_prefers_low_ranks_and_sequential_wraps() {
        let mut w = Workload::new(&scenario("{type: zipfian, theta: 0.99}"), 0, Shard::WHOLE).unwrap();
        let hot = (0..10_000)
            .filter(|_| w.next_request().key == Bytes::from_static(b"k:0"))
            .count();
        assert!(hot > 500, "rank 1 drawn {hot} times of 10000");
        let mut w = Workload::new(&scenario("{type: sequential}"), 0, Shard::WHOLE).unwrap();
        let keys: Vec<Bytes> = std::iter::from_fn(|| Some(w.next_request()))
            .filter(|r| r.op == 0)
            .take(1001)
            .map(|r| r.key)
            .collect();
        assert_eq!(keys[0], Bytes::from_static(b"k:0"));
        assert_eq!(keys[1000], Bytes::from_static(b"k:0"), "wraps after count keys");
    }
}
