//! `grpc.unary` and `grpc.server_stream` end to end: the `loadtest` binary calling
//! methods it knows only from `.proto` files or from the server's reflection, against an
//! in-test tonic server that records what arrives and against the embedded proxy; and the
//! errors a wrong method, field or value gets, at its place in the scenario.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use prism_proto::keyvalue::v1::key_value_basic_server::{KeyValueBasic, KeyValueBasicServer};
use prism_proto::keyvalue::v1::*;
use prism_proto::pubsub::v1::pub_sub_basic_server::{PubSubBasic, PubSubBasicServer};
use prism_proto::pubsub::v1::{
    Message, PublishRequest, PublishResponse, SubscribeRequest, SubscribeResponse, Subscribed, UnsubscribeRequest,
    UnsubscribeResponse, subscribe_response::Event,
};
use tonic::{Request, Response, Status};

mod support;
use support::{loadtest, run, write};

/// Messages each Subscribe stream of [`Recorder`] sends before it ends (after the
/// `subscribed` event).
const STREAM_MESSAGES: usize = 3;

/// What the in-test server saw: each Set's key, value and `x-source` metadata.
#[derive(Default)]
struct Seen {
    sets: Vec<(Bytes, Bytes, Option<String>)>,
    subscribes: usize,
}

/// An in-test gRPC server (a stand-in for "any service", named as such): records Sets,
/// answers Subscribe with a stream that ends by itself; other calls are UNIMPLEMENTED.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Seen>>);

#[tonic::async_trait]
impl KeyValueBasic for Recorder {
    async fn set(&self, request: Request<SetRequest>) -> Result<Response<SetResponse>, Status> {
        let source = request
            .metadata()
            .get("x-source")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let r = request.into_inner();
        self.0.lock().unwrap().sets.push((r.key, r.value, source));
        Ok(Response::new(SetResponse {}))
    }
    async fn get(&self, _: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        Err(Status::unimplemented("set only"))
    }
    async fn delete(&self, _: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        Err(Status::unimplemented("set only"))
    }
    async fn exists(&self, _: Request<ExistsRequest>) -> Result<Response<ExistsResponse>, Status> {
        Err(Status::unimplemented("set only"))
    }
}

#[tonic::async_trait]
impl PubSubBasic for Recorder {
    type SubscribeStream = futures::stream::Iter<std::vec::IntoIter<Result<SubscribeResponse, Status>>>;

    async fn publish(&self, _: Request<PublishRequest>) -> Result<Response<PublishResponse>, Status> {
        Err(Status::unimplemented("subscribe only"))
    }
    async fn subscribe(&self, request: Request<SubscribeRequest>) -> Result<Response<Self::SubscribeStream>, Status> {
        self.0.lock().unwrap().subscribes += 1;
        let topic = request.into_inner().topic;
        let subscribed = SubscribeResponse {
            event: Some(Event::Subscribed(Subscribed {
                subscription_id: "s".into(),
            })),
        };
        let messages = (0..STREAM_MESSAGES).map(|i| {
            Ok(SubscribeResponse {
                event: Some(Event::Message(Message {
                    topic: topic.clone(),
                    payload: Bytes::from(vec![i as u8]),
                    published_at_ms: 0,
                })),
            })
        });
        let all: Vec<_> = std::iter::once(Ok(subscribed)).chain(messages).collect();
        Ok(Response::new(futures::stream::iter(all)))
    }
    async fn unsubscribe(&self, _: Request<UnsubscribeRequest>) -> Result<Response<UnsubscribeResponse>, Status> {
        Err(Status::unimplemented("subscribe only"))
    }
}

/// Starts a [`Recorder`] with reflection (Prism's descriptors) on a free loopback port, in
/// a runtime of its own thread.
fn serve(recorder: Recorder) -> std::net::SocketAddr {
    support::serve_on_own_thread(|listener| async move {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(prism_proto::FILE_DESCRIPTOR_SET)
            .build_v1()
            .unwrap();
        tonic::transport::Server::builder()
            .add_service(KeyValueBasicServer::new(recorder.clone()))
            .add_service(PubSubBasicServer::new(recorder))
            .add_service(reflection)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)))
            .await
            .unwrap();
    })
}

fn proto_dir() -> String {
    format!("{}/../proto", env!("CARGO_MANIFEST_DIR"))
}

/// From `.proto` files: every Set the server got carries a key of the keyspace, the
/// template's text with `{n}` counted per request, `{bytes:16}` as 16 bytes, and the
/// operation's metadata; the server's count is the run's.
#[test]
fn unary_requests_are_encoded_from_protos_with_their_placeholders() {
    let recorder = Recorder::default();
    let addr = serve(recorder.clone());
    let dir = tempfile::tempdir().unwrap();
    let proto = proto_dir();
    let scenario = write(
        dir.path(),
        "s.yaml",
        &format!(
            "name: any-method\ntarget: {{endpoint: 'http://{addr}'}}\n\
             grpc: {{protos: ['{proto}/prism/keyvalue/v1/keyvalue.proto'], import_paths: ['{proto}']}}\n\
             load: {{model: closed, stages: [{{duration: 2s, concurrency: 1}}]}}\n\
             keyspaces: {{users: {{prefix: 'user:', count: 5}}}}\n\
             operations:\n\
             \x20 - op: grpc.unary\n\
             \x20   method: prism.keyvalue.v1.KeyValueBasic/Set\n\
             \x20   keys: users\n\
             \x20   request: {{key: '{{key}}-{{n}}', value: '{{bytes:16}}'}}\n\
             \x20   metadata: {{x-source: loadtest-test}}\n\
             thresholds: ['error_rate < 1%']\n"
        ),
    );
    let (code, out, err, run) = run(&scenario, dir.path());
    assert_eq!(code, Some(0), "{out}\n{err}");
    let run = run.unwrap();
    let seen = recorder.0.lock().unwrap();
    assert!(seen.sets.len() > 10, "{} sets", seen.sets.len());
    let op = &run["operations"][0];
    assert_eq!(op["operation"], "grpc.unary:prism.keyvalue.v1.KeyValueBasic/Set");
    assert_eq!(op["codes"]["OK"].as_u64().unwrap() as usize, seen.sets.len());
    for (n, (key, value, source)) in seen.sets.iter().enumerate() {
        let key = String::from_utf8(key.to_vec()).unwrap();
        let (stem, number) = key.rsplit_once('-').unwrap();
        assert!(
            stem.starts_with("user:") && stem[5..].parse::<u32>().unwrap() < 5,
            "{key}"
        );
        assert_eq!(number, n.to_string(), "{{n}} counts the requests");
        assert_eq!(value.len(), 16, "{{bytes:16}} in a bytes field is 16 bytes");
        assert_eq!(source.as_deref(), Some("loadtest-test"));
    }
    let distinct: std::collections::BTreeSet<&Bytes> = seen.sets.iter().map(|(_, v, _)| v).collect();
    assert!(distinct.len() > seen.sets.len() / 2, "values are random per request");
}

/// From the server's reflection: a server stream is read to its end when `messages` is
/// not set (each stream's messages counted), and closed after `messages` when it is; the
/// time to the first message is reported apart, and the total counts streams, not
/// messages.
#[test]
fn server_streams_are_read_to_the_end_or_to_n_messages() {
    let recorder = Recorder::default();
    let addr = serve(recorder.clone());
    let dir = tempfile::tempdir().unwrap();
    let scenario = |messages: &str| {
        format!(
            "name: streams\ntarget: {{endpoint: 'http://{addr}'}}\n\
             load: {{model: closed, stages: [{{duration: 2s, concurrency: 2}}]}}\n\
             operations:\n\
             \x20 - {{op: grpc.server_stream, method: prism.pubsub.v1.PubSubBasic/Subscribe, request: {{topic: t}}{messages}}}\n"
        )
    };
    let name = "grpc.server_stream:prism.pubsub.v1.PubSubBasic/Subscribe";
    for (messages, per_stream) in [("", STREAM_MESSAGES + 1), (", messages: 2", 2)] {
        let file = write(dir.path(), "s.yaml", &scenario(messages));
        let (code, out, err, run) = run(&file, dir.path());
        assert_eq!(code, Some(0), "{out}\n{err}");
        let run = run.unwrap();
        let count = |op: &str| {
            run["operations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["operation"] == op)
                .unwrap_or_else(|| panic!("no {op} in {}", run["operations"]))["count"]
                .as_u64()
                .unwrap()
        };
        let streams = count(name);
        assert!(streams > 10, "{streams} streams");
        assert_eq!(count(&format!("{name}:first_message")), streams, "{messages}");
        assert_eq!(
            count(&format!("{name}:message")),
            streams * per_stream as u64,
            "{messages}: every message of every stream"
        );
        assert_eq!(
            run["total"]["count"].as_u64().unwrap(),
            streams,
            "the total counts streams"
        );
        assert!(
            out.contains(&format!("{streams} streams, {per_stream}.00 messages each")),
            "{out}"
        );
        // Two clients, each with one stream open at a time.
        let peak = run["operations"][0]["streams_open_peak"].as_u64();
        assert!(matches!(peak, Some(1 | 2)), "{peak:?}");
        assert!(
            out.contains(&format!("at most {} open at once", peak.unwrap())),
            "{out}"
        );
    }
}

/// Against the real proxy (embedded), with no `.proto` files: the standard health Watch
/// stream churned (open, one message, close) and Check called, both found by reflection,
/// beside two Prism services defined in one file.
#[test]
fn the_embedded_proxy_is_called_by_reflection() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: health\nload: {model: closed, stages: [{duration: 2s, concurrency: 2}]}\n\
         keyspaces: {k: {prefix: 'k', count: 3}}\n\
         operations:\n\
         \x20 - {op: grpc.server_stream, method: grpc.health.v1.Health/Watch, request: {service: ''}, messages: 1}\n\
         \x20 - {op: grpc.unary, method: grpc.health.v1.Health/Check}\n\
         \x20 - {op: grpc.unary, method: prism.keyvalue.v1.KeyValueBasic/Get, keys: k, request: {key: '{key}'}}\n\
         \x20 - {op: grpc.unary, method: prism.keyvalue.v1.KeyValueScan/Count}\n\
         thresholds: ['error_rate < 0.1%']\n",
    );
    let (code, out, err, run) = run(&scenario, dir.path());
    assert_eq!(code, Some(0), "{out}\n{err}");
    let run = run.unwrap();
    let ops = run["operations"].as_array().unwrap();
    let watch = ops[0]["count"].as_u64().unwrap();
    assert!(ops[..4].iter().all(|o| o["count"].as_u64().unwrap() > 10), "{ops:?}");
    assert_eq!(
        ops[0]["codes"]["OK"].as_u64().unwrap(),
        watch,
        "closing after one message is no error"
    );
    assert_eq!(
        ops[5]["operation"],
        "grpc.server_stream:grpc.health.v1.Health/Watch:message"
    );
    assert_eq!(ops[5]["count"].as_u64().unwrap(), watch, "one message per stream");
}

/// A method the descriptors do not have, a misspelt field, a value of the wrong type, an
/// unquoted placeholder, an unknown placeholder, a unary op on a streaming method: each
/// is refused before anything runs, at its line and column, all at once (exit 3).
#[test]
fn wrong_methods_fields_and_values_are_refused_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let proto = proto_dir();
    let scenario = write(
        dir.path(),
        "bad.yaml",
        &format!(
            "name: bad\n\
             grpc: {{protos: ['{proto}/prism/timeseries/v1/timeseries.proto', '{proto}/prism/pubsub/v1/pubsub.proto'], import_paths: ['{proto}']}}\n\
             load: {{model: closed, stages: [{{duration: 1s, concurrency: 1}}]}}\n\
             operations:\n\
             \x20 - op: grpc.unary\n\
             \x20   method: prism.timeseries.v1.TimeSeriesBasic/Nope\n\
             \x20 - op: grpc.unary\n\
             \x20   method: prism.timeseries.v1.TimeSeriesBasic/Aggregate\n\
             \x20   request:\n\
             \x20     stream: s\n\
             \x20     strem: s\n\
             \x20     start_ms: yesterday\n\
             \x20     end_ms: [1]\n\
             \x20     metric: {{key}}\n\
             \x20     function: P42\n\
             \x20     groupBy: ['{{nope}}']\n\
             \x20 - op: grpc.unary\n\
             \x20   method: prism.pubsub.v1.PubSubBasic/Subscribe\n"
        ),
    );
    let (code, out, err) = loadtest(&["validate", &scenario]);
    assert_eq!(code, Some(3), "{out}\n{err}");
    for needle in [
        "bad.yaml:6:5: operations[0].method: service prism.timeseries.v1.TimeSeriesBasic has no method \"Nope\"",
        "bad.yaml:11:7: operations[1].request.strem: message prism.timeseries.v1.AggregateRequest has no field \"strem\"",
        "bad.yaml:13:7: operations[1].request.end_ms: expected a number for int64 field end_ms, found a list",
        "bad.yaml:14:7: operations[1].request.metric: expected a string for string field metric, found a mapping; quote a placeholder in YAML",
        "bad.yaml:15:7: operations[1].request.function: \"P42\" is no value of enum prism.timeseries.v1.AggregateFunction",
        "bad.yaml:16:17: operations[1].request.groupBy[0]: {nope} is no placeholder",
        "bad.yaml:17:5: operations[2].op: prism.pubsub.v1.PubSubBasic/Subscribe is server-streaming: use op: grpc.server_stream",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
    // `yesterday` in an int64 field is caught by the JSON mapping's sample encoding.
    let typed = write(
        dir.path(),
        "typed.yaml",
        &format!(
            "name: typed\n\
             grpc: {{protos: ['{proto}/prism/timeseries/v1/timeseries.proto'], import_paths: ['{proto}']}}\n\
             load: {{model: closed, stages: [{{duration: 1s, concurrency: 1}}]}}\n\
             operations:\n\
             \x20 - op: grpc.unary\n\
             \x20   method: prism.timeseries.v1.TimeSeriesBasic/Query\n\
             \x20   request: {{stream: s, start_ms: yesterday}}\n"
        ),
    );
    let (code, _, err) = loadtest(&["validate", &typed]);
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("typed.yaml:7:") && err.contains("operations[0].request"),
        "{err}"
    );
}

/// With reflection, the request is checked when the run starts, and a wrong field is
/// still refused at its place before any load (exit 3).
#[test]
fn reflected_methods_are_checked_before_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: reflected\nload: {model: closed, stages: [{duration: 5s, concurrency: 1}]}\n\
         operations:\n\
         \x20 - op: grpc.unary\n\
         \x20   method: grpc.health.v1.Health/Check\n\
         \x20   request: {servce: x}\n",
    );
    let (code, out, err) = loadtest(&["validate", &scenario]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("checked when the run starts"), "{out}");
    let (code, out, err, run) = run(&scenario, dir.path());
    assert_eq!(code, Some(3), "{out}\n{err}");
    assert!(run.is_none(), "nothing ran");
    assert!(
        err.contains("s.yaml:6:15: operations[0].request.servce: message grpc.health.v1.HealthCheckRequest has no field \"servce\""),
        "{err}"
    );
}
