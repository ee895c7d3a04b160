//! The `loadtest` binary end to end: validation errors, runs against the embedded proxy
//! and against an in-test gRPC server with a known injected latency, exit codes.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
#[cfg(feature = "http")]
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use prism_proto::keyvalue::v1::key_value_basic_server::{KeyValueBasic, KeyValueBasicServer};
use prism_proto::keyvalue::v1::*;
use tonic::{Request, Response, Status};

mod support;
use support::{loadtest, write};

/// Every test here runs the generator, and several measure time: they hold this so they
/// do not share the two cores with each other.
static TIMING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn timing() -> std::sync::MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn validate_reports_every_problem_with_its_place() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.yaml",
        "name: x\nload: {model: open, stages: [{duration: 0s, rate: -5}]}\nkeyspaces: {k: {count: 0}}\n\
         operations:\n  - {op: keyvalue.gett, keys: nope}\nthresholds: ['p99 < 5']\n",
    );
    let (code, _, err) = loadtest(&["validate", &bad]);
    assert_eq!(code, Some(3));
    for expected in [
        "stages[0].duration",
        "stages[0].rate",
        "keyspaces.k.count",
        "operations[0].op",
        "operations[0].keys",
        "thresholds[0]",
    ] {
        assert!(err.contains(expected), "missing {expected}: {err}");
    }
    let typo = write(dir.path(), "typo.yaml", "name: x\nlod: 1\n");
    let (code, _, err) = loadtest(&["validate", &typo]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("typo.yaml:2:1") && err.contains("unknown field `lod`"),
        "{err}"
    );
    let (code, out, _) = loadtest(&["validate", "../scenarios/quickstart.yaml"]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn run_against_embedded_proxy_writes_results_and_passes() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: embedded\nload: {model: open, warmup: 1s, stages: [{duration: 3s, rate: 500}]}\n\
         keyspaces: {k: {prefix: 'k:', count: 100}}\n\
         operations:\n  - {op: keyvalue.set, weight: 1, keys: k, value_size: 32}\n  - {op: keyvalue.get, weight: 1, keys: k}\n\
         thresholds: ['error_rate < 1%', 'achieved_rate >= 90%']\n",
    );
    let out_dir = dir.path().join("out");
    let (code, out, err) = loadtest(&["run", &scenario, "--out", out_dir.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("PASSED"), "{out}");
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("run.json")).unwrap()).unwrap();
    let count = run["total"]["count"].as_u64().unwrap();
    // 2 s measured at 500/s.
    assert!((900..=1100).contains(&count), "count {count}");
    assert_eq!(run["thresholds"].as_array().unwrap().len(), 2);
    assert!(std::fs::metadata(out_dir.join("latency.hlog")).unwrap().len() > 100);
}

#[test]
fn failed_threshold_exits_two() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: strict\nload: {model: closed, stages: [{duration: 1s, concurrency: 2}]}\n\
         keyspaces: {k: {count: 10}}\noperations:\n  - {op: keyvalue.get, keys: k}\nthresholds: ['p50 < 1us']\n",
    );
    let (code, out, err) = loadtest(&[
        "run",
        &scenario,
        "--out",
        dir.path().join("o").to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(out.contains("FAIL"), "{out}");
}

/// `summary.csv`, `series.csv` and `thresholds.xml` say what `run.json` says: the same
/// counts and percentiles per operation, a row per second, a JUnit case per threshold
/// with the failed one marked and carrying its actual value.
#[test]
fn csv_and_junit_exports_agree_with_run_json() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: exports\nload: {model: open, stages: [{duration: 2s, rate: 300}]}\n\
         keyspaces: {k: {prefix: 'k:', count: 100}}\n\
         operations:\n  - {op: keyvalue.set, keys: k, value_size: 16}\n  - {op: keyvalue.get, keys: k}\n\
         thresholds: ['error_rate < 1%', 'p50 < 1us']\n",
    );
    let out_dir = dir.path().join("out");
    let (code, out, err) = loadtest(&["run", &scenario, "--out", out_dir.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(out.contains("summary.csv"), "the files are named: {out}");
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("run.json")).unwrap()).unwrap();

    let mut summary = csv::Reader::from_path(out_dir.join("summary.csv")).unwrap();
    let header = summary.headers().unwrap().clone();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no {name} in {header:?}"))
    };
    let rows: Vec<csv::StringRecord> = summary.records().map(Result::unwrap).collect();
    let expected: Vec<&serde_json::Value> = run["operations"]
        .as_array()
        .unwrap()
        .iter()
        .chain(std::iter::once(&run["total"]))
        .collect();
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    for (row, op) in rows.iter().zip(&expected) {
        assert_eq!(&row[column("operation")], op["operation"].as_str().unwrap());
        assert_eq!(
            row[column("count")].parse::<u64>().unwrap(),
            op["count"].as_u64().unwrap()
        );
        assert_eq!(
            row[column("p99_us")].parse::<u64>().unwrap(),
            op["latency"]["p99_us"].as_u64().unwrap()
        );
        let ok = op["codes"]["OK"].as_u64().unwrap();
        assert!(row[column("codes")].contains(&format!("OK={ok}")), "{row:?}");
    }

    let mut series = csv::Reader::from_path(out_dir.join("series.csv")).unwrap();
    let header = series.headers().unwrap().clone();
    assert!(header.iter().any(|h| h == "p99_us:keyvalue.get"), "{header:?}");
    let completed = header.iter().position(|h| h == "completed").unwrap();
    let rows: Vec<csv::StringRecord> = series.records().map(Result::unwrap).collect();
    let seconds = run["time_series"].as_array().unwrap();
    assert_eq!(rows.len(), seconds.len());
    let sum = |it: &mut dyn Iterator<Item = u64>| it.sum::<u64>();
    assert_eq!(
        sum(&mut rows.iter().map(|r| r[completed].parse::<u64>().unwrap())),
        sum(&mut seconds.iter().map(|s| s["completed"].as_u64().unwrap()))
    );

    let xml = std::fs::read_to_string(out_dir.join("thresholds.xml")).unwrap();
    assert!(xml.contains(r#"tests="3""#) && xml.contains(r#"failures="1""#), "{xml}");
    let case = |name: &str| {
        let start = xml
            .find(&format!(r#"<testcase name="{name}""#))
            .unwrap_or_else(|| panic!("no case {name}: {xml}"));
        // Up to the next case or the end of the suite.
        let rest = &xml[start + 1..];
        let end = rest
            .find("<testcase")
            .or_else(|| rest.find("</testsuite>"))
            .map_or(xml.len(), |e| start + 1 + e);
        xml[start..end].to_string()
    };
    assert!(!case("error_rate &lt; 1%").contains("<failure"), "{xml}");
    assert!(!case("run").contains("<failure"), "{xml}");
    let failed = case("p50 &lt; 1us");
    assert!(failed.contains("<failure") && failed.contains("actual"), "{failed}");
}

/// A run of several stages shows each stage on the terminal and in run.json, with its
/// own rate; `report` of a run.json written without them computes them again.
#[test]
fn each_stage_is_reported_apart() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: staged\nload: {model: open, stages: [{duration: 1s, rate: 100}, {duration: 1s, rate: 300}]}\n\
         keyspaces: {k: {count: 10}}\noperations: [{op: keyvalue.get, keys: k}]\n",
    );
    let out_dir = dir.path().join("out");
    let (code, out, err) = loadtest(&["run", &scenario, "--out", out_dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        out.contains("worst p99") && out.contains("100 req/s") && out.contains("300 req/s"),
        "{out}"
    );
    let path = out_dir.join("run.json");
    let mut run: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let completed: Vec<u64> = run["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["completed"].as_u64().unwrap())
        .collect();
    assert_eq!(completed.len(), 2, "{}", run["stages"]);
    assert!(
        completed[0].abs_diff(100) <= 10 && completed[1].abs_diff(300) <= 30,
        "{completed:?}"
    );
    run.as_object_mut().unwrap().remove("stages");
    std::fs::write(&path, serde_json::to_vec(&run).unwrap()).unwrap();
    let (code, out, _) = loadtest(&["report", path.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(out.contains("300 req/s"), "stages computed again: {out}");
}

/// Keys and values from a feed file: a run sends them (count taken from the file), and a
/// bad feed is refused before anything runs, with the scenario's line of `file:` and the
/// feed's own line of the bad row.
#[test]
fn keyspaces_read_keys_and_values_from_files() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "users.jsonl",
        "{\"key\": \"user:1\", \"value\": \"one\"}\n{\"key\": \"user:2\"}\n",
    );
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: fed\nload: {model: open, stages: [{duration: 1s, rate: 200}]}\n\
         keyspaces: {u: {file: users.jsonl}}\n\
         operations: [{op: keyvalue.set, keys: u}, {op: keyvalue.get, keys: u}]\n\
         thresholds: ['error_rate < 1%']\n",
    );
    let out_dir = dir.path().join("out");
    let (code, out, err) = loadtest(&["run", &scenario, "--out", out_dir.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["scenario"]["keyspaces"]["u"]["count"].as_u64(), Some(2));
    assert!(run["total"]["count"].as_u64().unwrap() > 100);

    write(dir.path(), "bad.csv", "key,value\nk1,v\n,v2\n");
    let bad = write(
        dir.path(),
        "bad.yaml",
        "name: fed\nload: {model: open, stages: [{duration: 1s, rate: 10}]}\n\
         keyspaces:\n  u:\n    file: bad.csv\n  v:\n    file: users.jsonl\n    count: 3\n\
         operations: [{op: keyvalue.get, keys: u}, {op: keyvalue.get, keys: v}]\n",
    );
    let (code, out, err) = loadtest(&["validate", &bad]);
    assert_eq!(code, Some(3), "{out}\n{err}");
    let all = format!("{out}{err}");
    assert!(all.contains("bad.yaml:5:") && all.contains("keyspaces.u.file"), "{all}");
    assert!(all.contains("bad.csv:3: the key is empty"), "{all}");
    assert!(
        all.contains("keyspaces.v.count") && all.contains("3 is more than the 2 rows of users.jsonl"),
        "{all}"
    );
}

/// Decides, from a request's metadata, how long Get waits (or which error it returns).
type Script = Box<dyn Fn(&tonic::metadata::MetadataMap) -> Result<Duration, Status> + Send + Sync>;

/// The most any scripted Get slept past its delay, in microseconds: the server's share of
/// a busy machine, measured in the run.
static OVERSLEPT_US: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// An in-test gRPC server whose Get follows a [`Script`]; other calls are UNIMPLEMENTED.
struct Scripted(Script);

#[tonic::async_trait]
impl KeyValueBasic for Scripted {
    async fn set(&self, _: Request<SetRequest>) -> Result<Response<SetResponse>, Status> {
        Err(Status::unimplemented("get only"))
    }
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let delay = (self.0)(request.metadata())?;
        if !delay.is_zero() {
            let asleep = std::time::Instant::now();
            tokio::time::sleep(delay).await;
            let late = asleep.elapsed().saturating_sub(delay).as_micros() as u64;
            OVERSLEPT_US.fetch_max(late, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(Response::new(GetResponse {
            found: true,
            value: Bytes::from_static(b"v"),
        }))
    }
    async fn delete(&self, _: Request<DeleteRequest>) -> Result<Response<DeleteResponse>, Status> {
        Err(Status::unimplemented("get only"))
    }
    async fn exists(&self, _: Request<ExistsRequest>) -> Result<Response<ExistsResponse>, Status> {
        Err(Status::unimplemented("get only"))
    }
}

/// Starts a [`Scripted`] server on a free loopback port.
async fn serve(
    script: impl Fn(&tonic::metadata::MetadataMap) -> Result<Duration, Status> + Send + Sync + 'static,
) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(KeyValueBasicServer::new(Scripted(Box::new(script))))
            // Without TCP_NODELAY, Nagle and delayed ACKs hold some answers ~40 ms.
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))),
    );
    addr
}

/// Runs a scenario with the loadtest binary off the async runtime; returns the exit
/// code, stdout and the run.json it wrote.
async fn run_scenario(yaml: String) -> (Option<i32>, String, serde_json::Value) {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let scenario = write(dir.path(), "s.yaml", &yaml);
        let out = dir.path().join("out");
        let (code, stdout, stderr) = loadtest(&["run", &scenario, "--out", out.to_str().unwrap(), "--quiet"]);
        let run = std::fs::read(out.join("run.json"))
            .map(|b| serde_json::from_slice(&b).unwrap())
            .unwrap_or_else(|_| panic!("no run.json: {stdout}\n{stderr}"));
        (code, stdout, run)
    })
    .await
    .unwrap()
}

const DELAY: Duration = Duration::from_millis(20);

// The guard only orders whole tests (each with its own runtime) against each other.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reported_percentiles_match_an_injected_latency() {
    let _serial = timing();
    let addr = serve(|_| Ok(DELAY)).await;
    let (code, out, run) = run_scenario(format!(
        "name: slow\ntarget: {{endpoint: 'http://{addr}', channels: 2}}\n\
         load: {{model: open, warmup: 500ms, stages: [{{duration: 3s, rate: 100}}]}}\n\
         keyspaces: {{k: {{count: 10}}}}\noperations:\n  - {{op: keyvalue.get, keys: k}}\n"
    ))
    .await;
    assert_eq!(code, Some(0), "{out}");
    let latency = &run["operations"][0]["latency"];
    let p50 = latency["p50_us"].as_u64().unwrap();
    let p99 = latency["p99_us"].as_u64().unwrap();
    // The truth is 20 ms. What a busy machine adds is measured in this run: the
    // generator's own lateness (send lag, in run.json) and the server's (how far its
    // sleeps overran); beyond them, 5 ms for timer rounding and the loopback trip.
    let lag_max = run["send_lag"]["max_us"].as_u64().unwrap();
    let overslept = OVERSLEPT_US.load(std::sync::atomic::Ordering::Relaxed);
    let bound = 20_000 + lag_max + overslept + 5_000;
    assert!(
        (20_000..=bound).contains(&p50),
        "p50 {p50} us for a 20 ms server (send lag max {lag_max} us, server overslept {overslept} us)"
    );
    assert!(
        (20_000..=bound).contains(&p99),
        "p99 {p99} us for a 20 ms server (send lag max {lag_max} us, server overslept {overslept} us)"
    );
    let service_p50 = run["operations"][0]["service_time"]["p50_us"].as_u64().unwrap();
    assert!(
        p50 >= service_p50 && p50 - service_p50 < 2_000,
        "corrected {p50} vs service {service_p50}"
    );
    assert_eq!(run["operations"][0]["errors"].as_u64(), Some(0));
}

/// A run whose every request fails is FAILED (exit 2) with no thresholds at all, and says
/// why: the status codes, in the table, the verdict line and the HTML.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_requests_all_fail_is_failed_and_explained() {
    let _serial = timing();
    let addr = serve(|_| Err(Status::unimplemented("not here"))).await;
    let (code, out, run) = run_scenario(format!(
        "name: failing\n\
         target: {{endpoint: 'http://{addr}'}}\n\
         load: {{model: open, stages: [{{duration: 1s, rate: 100}}]}}\n\
         keyspaces: {{k: {{count: 10}}}}\n\
         operations:\n\
         - {{op: keyvalue.get, keys: k}}\n"
    ))
    .await;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("errors of keyvalue.get: UNIMPLEMENTED"), "{out}");
    assert!(out.contains("FAILED: every request failed: UNIMPLEMENTED"), "{out}");
    assert_eq!(run["passed"], false);
    assert!(
        run["failures"][0].as_str().unwrap().contains("UNIMPLEMENTED"),
        "{}",
        run["failures"]
    );
    // Errors by code over time: each second's failures by status, summing to the total.
    let per_second: u64 = run["time_series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["error_codes"]["UNIMPLEMENTED"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        Some(per_second),
        run["total"]["errors"].as_u64(),
        "errors by code over time"
    );
}

/// `abort_on_fail`: a 20 s run whose every request fails stops soon after its `after`,
/// exits 2 and says which threshold stopped it and when; rates are over the time it ran.
/// An abort rule that holds lets the run go its whole length.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_the_run_and_says_why() {
    let _serial = timing();
    let failing = serve(|_| Err(Status::unavailable("down"))).await;
    let scenario = |addr, rule: &str, duration: &str| {
        format!(
            "name: abort\ntarget: {{endpoint: 'http://{addr}'}}\n\
             load: {{model: open, stages: [{{duration: {duration}, rate: 200}}]}}\n\
             keyspaces: {{k: {{count: 10}}}}\noperations: [{{op: keyvalue.get, keys: k}}]\n\
             thresholds: ['{rule}']\n"
        )
    };
    let started = std::time::Instant::now();
    let (code, out, run) = run_scenario(scenario(failing, "error_rate < 50% abort_on_fail after 2s", "20s")).await;
    let took = started.elapsed();
    assert_eq!(code, Some(2), "{out}");
    let failures = run["failures"].to_string();
    assert!(
        failures.contains("stopped early at")
            && failures.contains("of 20 s: `error_rate < 50% abort_on_fail after 2s` failed (actual 100.000%)"),
        "{failures}"
    );
    assert!(out.contains("stopped early"), "{out}");
    let measured = run["measured_s"].as_f64().unwrap();
    assert!((2.0..20.0).contains(&measured), "measured {measured} s");
    assert!(
        took < Duration::from_secs(15),
        "a 20 s run stopped at {measured} s took {took:?}"
    );
    let rate = run["total"]["rate_per_s"].as_f64().unwrap();
    assert!((rate - 200.0).abs() < 40.0, "the rate is over the time it ran: {rate}");

    // The closed model's clients stop too.
    let closed = scenario(failing, "error_rate < 50% abort_on_fail after 1s", "20s").replace(
        "{model: open, stages: [{duration: 20s, rate: 200}]}",
        "{model: closed, stages: [{duration: 20s, concurrency: 4}]}",
    );
    stops_early(closed).await;

    let fine = serve(|_| Ok(Duration::ZERO)).await;
    let (code, out, run) = run_scenario(scenario(fine, "error_rate < 50% abort_on_fail", "2s")).await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(run["measured_s"].as_f64(), Some(2.0));

    let dir = tempfile::tempdir().unwrap();
    let late = write(
        dir.path(),
        "late.yaml",
        &scenario(fine, "p99 < 5ms abort_on_fail after 30s", "10s"),
    );
    let (code, _, err) = loadtest(&["validate", &late]);
    assert_eq!(code, Some(3));
    assert!(err.contains("it would never be checked"), "{err}");
}

/// Failed requests are kept out of the percentiles: half the Gets fail at once and half
/// take 20 ms; the latency reported is the 20 ms of the answers (mixed in, the fast
/// failures would make the p50 look like 1 ms), and the failures' own latency is apart.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_requests_are_kept_out_of_the_percentiles() {
    let _serial = timing();
    let n = std::sync::atomic::AtomicU64::new(0);
    let addr = serve(move |_| {
        if n.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(2) {
            Err(Status::unavailable("every other one"))
        } else {
            Ok(DELAY)
        }
    })
    .await;
    let (_, out, run) = run_scenario(format!(
        "name: half\ntarget: {{endpoint: 'http://{addr}'}}\n\
         load: {{model: open, stages: [{{duration: 2s, rate: 100}}]}}\n\
         keyspaces: {{k: {{count: 10}}}}\noperations:\n  - {{op: keyvalue.get, keys: k}}\n"
    ))
    .await;
    let op = &run["operations"][0];
    let (count, errors) = (op["count"].as_u64().unwrap(), op["errors"].as_u64().unwrap());
    assert!(
        errors > count / 3 && errors < count * 2 / 3,
        "{count} requests, {errors} errors"
    );
    let ok_p50 = op["latency"]["p50_us"].as_u64().unwrap();
    assert!(
        ok_p50 >= 20_000,
        "p50 of the answers {ok_p50} us: the fast failures were mixed in\n{out}"
    );
    assert_eq!(op["latency"]["count"].as_u64(), Some(count - errors));
    assert_eq!(op["failed_latency"]["count"].as_u64(), Some(errors));
    let failed_p50 = op["failed_latency"]["p50_us"].as_u64().unwrap();
    assert!(failed_p50 < 20_000, "failures answered at once, p50 {failed_p50} us");
    assert!(out.contains("errors of keyvalue.get: UNAVAILABLE"), "{out}");
}

/// A scenario that could measure nothing, thresholds on operations it does not run or
/// with impossible rates, and achieved_rate on a closed run are refused by `validate` and
/// `run` alike, with exit code 3 (bad input); a typo on the command line is 3 too, and
/// `--help` is 0.
#[test]
fn impossible_scenarios_and_usage_errors_are_bad_input() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "nothing.yaml",
        "name: x\n\
         load: {model: open, warmup: 10s, stages: [{duration: 3s, rate: 10}]}\n\
         keyspaces: {k: {count: 1}}\n\
         operations:\n\
         - {op: keyvalue.get, keys: k}\n\
         thresholds: ['p99 < 5ms for keyvalue.gett', 'error_rate < 5']\n",
    );
    for command in ["validate", "run"] {
        let (code, _, err) = loadtest(&[command, &path]);
        assert_eq!(code, Some(3), "{command}: {err}");
        for expected in [
            "load.warmup",
            "nothing would be measured",
            "thresholds[0]",
            "no operation \"keyvalue.gett\" (it runs: keyvalue.get)",
            "thresholds[1]",
            "from 0 to 100%",
        ] {
            assert!(err.contains(expected), "{command}: {expected:?} missing from {err}");
        }
    }
    let closed = write(
        dir.path(),
        "closed.yaml",
        "name: x\n\
         load: {model: closed, stages: [{duration: 1s, concurrency: 1}]}\n\
         keyspaces: {k: {count: 1}}\n\
         operations:\n\
         - {op: keyvalue.get, keys: k}\n\
         thresholds: ['achieved_rate >= 95%']\n",
    );
    let (code, _, err) = loadtest(&["validate", &closed]);
    assert_eq!(code, Some(3));
    assert!(err.contains("achieved_rate is for `model: open`"), "{err}");
    let (code, _, err) = loadtest(&["runn", &closed]);
    assert_eq!(code, Some(3), "a typo: {err}");
    assert!(err.contains("runn"), "{err}");
    let (code, out, _) = loadtest(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("Exit codes: 0 passed, 1 error while running, 2 a check failed, 3 bad input"),
        "{out}"
    );
}

/// Errors under `load:` name their field path and line, in words rather than Rust types,
/// and every one of them at once (an internally tagged enum reported the first at 1:1).
#[test]
fn load_errors_name_their_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let typed = write(
        dir.path(),
        "typed.yaml",
        "name: x\nload:\n  model: open\n  stages:\n    - {duration: 1s, rate: fast}\n\
         keyspaces: {k: {count: 1}}\noperations:\n  - {op: keyvalue.get, keys: k}\n",
    );
    let (code, _, err) = loadtest(&["validate", &typed]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("typed.yaml:5:28: load.stages[0].rate: invalid type: string \"fast\", expected a number of requests per second"),
        "{err}"
    );
    let mixed = write(
        dir.path(),
        "mixed.yaml",
        "name: x\nload:\n  model: open\n  think_time: 1s\n  stages:\n    - {duration: 1s}\n    - {duration: 1s, rate: 5, concurrency: 3}\n\
         keyspaces: {k: {count: 1}}\noperations:\n  - {op: keyvalue.get, keys: k}\n",
    );
    let (code, _, err) = loadtest(&["validate", &mixed]);
    assert_eq!(code, Some(3));
    for expected in [
        "mixed.yaml:4:3: load.think_time: is for `model: closed`",
        "mixed.yaml:6:7: load.stages[0].rate: an open stage needs a rate",
        "mixed.yaml:7:31: load.stages[1].concurrency: is for `model: closed`",
    ] {
        assert!(err.contains(expected), "{expected:?} missing from {err}");
    }
}

/// Before any load, the target is asked what the scenario's namespace serves: a namespace
/// it does not have, or an operation on an interface the namespace does not serve, is
/// one clear error (exit 1), not a run of failures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_is_checked_before_the_run() {
    use prism_proxy::config::{BackendConfig, Config, NamespaceConfig};
    let namespace = NamespaceConfig {
        interfaces: Some(vec![prism_proxy::Interface::KeyvalueBasic]),
        ..NamespaceConfig::new(BackendConfig::memstore())
    };
    let proxy = prism_proxy::server::start(&Config::ephemeral([("kv".to_string(), namespace)]))
        .await
        .unwrap();
    let endpoint = format!("http://{}", proxy.grpc_addr);
    let dir = tempfile::tempdir().unwrap();
    for (name, namespace, op, expected) in [
        (
            "unknown",
            "nope",
            "keyvalue.get",
            "refused namespace \"nope\" before the run",
        ),
        (
            "unserved",
            "kv",
            "queue.enqueue",
            "queue.enqueue needs queue_basic; it serves: keyvalue_basic",
        ),
    ] {
        let path = write(
            dir.path(),
            &format!("{name}.yaml"),
            &format!(
                "name: {name}\n\
         target: {{endpoint: '{endpoint}', namespace: {namespace}}}\n\
                 load: {{model: open, stages: [{{duration: 1s, rate: 10}}]}}\n\
                 keyspaces: {{k: {{count: 1}}}}\n\
         operations:\n\
         - {{op: {op}, keys: k}}\n"
            ),
        );
        let (code, out, err) = tokio::task::spawn_blocking(move || loadtest(&["run", &path, "--quiet"]))
            .await
            .unwrap();
        assert_eq!(code, Some(1), "{name}: {out}\n{err}");
        assert!(err.contains(expected), "{name}: {expected:?} missing from {err}");
        assert!(!out.contains("operation"), "{name}: a run was made: {out}");
    }
}

/// `compare` sees more than latency: a run whose requests all failed, fast, is a
/// regression (errors, and the failed verdict), and a run folder is accepted for its
/// run.json.
#[test]
fn compare_counts_errors_and_accepts_run_folders() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let base = short_run(dir.path());
    let mut failing: serde_json::Value = serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    for op in failing["operations"].as_array_mut().unwrap() {
        let count = op["count"].clone();
        op["errors"] = count;
    }
    let count = failing["total"]["count"].clone();
    failing["total"]["errors"] = count;
    failing["passed"] = false.into();
    failing["failures"] = serde_json::json!(["every request failed: UNAVAILABLE 100%"]);
    let folder = dir.path().join("failing");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("run.json"), serde_json::to_vec(&failing).unwrap()).unwrap();
    let base_folder = base.parent().unwrap().to_str().unwrap().to_string();
    let (code, out, err) = loadtest(&["compare", &base_folder, folder.to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(out.contains("REGRESSION: a new run FAILED"), "{out}");
    assert!(
        out.lines().any(|l| l.contains("errors") && l.contains("REGRESSION")),
        "{out}"
    );
    let (code, out, _) = loadtest(&["compare", &base_folder, &base_folder]);
    assert_eq!(code, Some(0), "a run against itself: {out}");
}

/// Pinned to one core, the generator runs on one thread (the embedded proxy with it) and
/// still completes a run; with two cores it uses a worker per core.
#[test]
fn a_generator_pinned_to_one_core_runs_on_one_thread() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "pinned.yaml",
        "name: pinned\nload: {model: open, stages: [{duration: 1s, rate: 200}]}\n\
         keyspaces: {k: {count: 10}}\noperations:\n  - {op: keyvalue.get, keys: k}\n",
    );
    let out = Command::new("taskset")
        .args([
            "-c",
            "0",
            env!("CARGO_BIN_EXE_loadtest"),
            "run",
            &scenario,
            "--quiet",
            "--out",
        ])
        .arg(dir.path().join("out"))
        .output()
        .expect("taskset (util-linux)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("on one thread"), "{err}");
    let (code, _, err) = loadtest(&[
        "run",
        &scenario,
        "--quiet",
        "--out",
        dir.path().join("again").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores > 1 {
        assert!(err.contains(&format!("on {cores} worker threads")), "{err}");
    }
}

/// Repeated runs are compared as series: a p99 whose median moved beyond the tolerance
/// but whose range overlaps the base's is noise, not a regression; one whose every run is
/// slower than every base run is.
#[test]
fn compare_of_repeated_runs_tells_noise_from_a_regression() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let base = short_run(dir.path());
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    let series = |name: &str, p99s: &[u64]| -> String {
        let folder = dir.path().join(name);
        for (i, p99) in p99s.iter().enumerate() {
            let mut r = run.clone();
            for op in r["operations"].as_array_mut().unwrap() {
                op["latency"]["p99_us"] = (*p99).into();
            }
            r["total"]["latency"]["p99_us"] = (*p99).into();
            let one = folder.join(format!("run{i}"));
            std::fs::create_dir_all(&one).unwrap();
            std::fs::write(one.join("run.json"), serde_json::to_vec(&r).unwrap()).unwrap();
        }
        folder.to_str().unwrap().to_string()
    };
    // Fixed run.json values are needed here: real runs' p99 is what is noisy.
    let base_series = series("base", &[1_000, 3_000, 2_000]);
    let noisy = series("noisy", &[2_500, 3_500, 1_500]);
    let slower = series("slower", &[4_000, 4_500, 5_000]);
    let (code, out, err) = loadtest(&["compare", &base_series, &noisy]);
    assert_eq!(code, Some(0), "overlapping ranges are noise:\n{out}\n{err}");
    assert!(out.contains("within the noise"), "{out}");
    assert!(out.contains("3 base run(s), 3 new run(s)"), "{out}");
    let (code, out, _) = loadtest(&["compare", &base_series, &slower]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.lines().any(|l| l.contains("p99") && l.contains("REGRESSION")),
        "{out}"
    );
    let (code, _, err) = loadtest(&["compare", &base_series, dir.path().join("nothing").to_str().unwrap()]);
    assert_eq!(code, Some(3), "{err}");
}

/// Runs a short embedded scenario into `dir` and returns the run.json path.
fn short_run(dir: &Path) -> std::path::PathBuf {
    let scenario = write(
        dir,
        "s.yaml",
        "name: short\nload: {model: open, stages: [{duration: 2s, rate: 300}]}\n\
         keyspaces: {k: {count: 10}}\noperations:\n  - {op: keyvalue.get, keys: k}\n  - {op: keyvalue.set, keys: k}\n",
    );
    let out = dir.join("out");
    let (code, stdout, err) = loadtest(&["run", &scenario, "--out", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    out.join("run.json")
}

#[test]
fn html_report_has_the_four_charts_and_report_rewrites_it() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let run = short_run(dir.path());
    let html = std::fs::read_to_string(run.with_file_name("report.html")).unwrap();
    for id in ["latency-over-time", "percentiles", "throughput", "errors"] {
        assert!(html.contains(&format!("<svg id=\"{id}\"")), "chart {id} missing");
    }
    assert!(
        html.contains("data-series=\"keyvalue.get\""),
        "one distribution line per operation"
    );
    assert!(!html.contains("<script"), "self-contained, no scripts");
    // What a reader needs to sign the run off: when, which tool, which file, each stage.
    for expected in [
        "UTC with loadtest ",
        "scenario file ",
        "s.yaml",
        "<h2>Stages</h2>",
        "<td>300 req/s</td>",
    ] {
        assert!(html.contains(expected), "{expected:?} missing from the report");
    }
    // The percentile curve is drawn from the histogram, corrected and uncorrected: far
    // more points than the nine of the summary.
    let curve = html
        .split("data-series=\"keyvalue.get (uncorrected)\"")
        .nth(1)
        .and_then(|rest| rest.split("points=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("an uncorrected percentile curve");
    assert!(curve.split(' ').count() > 40, "{} points", curve.split(' ').count());
    // Count axes tick at whole numbers from 0 (no "0, 1, 1, 1"), latency axes in time units.
    let errors_chart = html.split("<svg id=\"errors\"").nth(1).unwrap();
    let errors_chart = errors_chart.split("</svg>").next().unwrap();
    let ticks: Vec<&str> = errors_chart
        .split("class=\"tick\" text-anchor=\"end\">")
        .skip(1)
        .filter_map(|t| t.split('<').next())
        .collect();
    assert_eq!(ticks, ["0", "1", "2", "3", "4"], "errors axis");
    let other = dir.path().join("again.html");
    let (code, out, err) = loadtest(&["report", run.to_str().unwrap(), "--html", other.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("keyvalue.get"), "{out}");
    assert_eq!(
        std::fs::read_to_string(other).unwrap(),
        html,
        "the same run renders the same page"
    );
}

#[test]
fn compare_flags_a_regression_beyond_the_tolerance() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let base = short_run(dir.path());
    let mut run: serde_json::Value = serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    // Same run, p99 of keyvalue.get twice as slow.
    let p99 = run["operations"][0]["latency"]["p99_us"].as_u64().unwrap();
    run["operations"][0]["latency"]["p99_us"] = (p99 * 2).into();
    let slower = dir.path().join("slower.json");
    std::fs::write(&slower, serde_json::to_vec(&run).unwrap()).unwrap();
    let (code, out, _) = loadtest(&["compare", base.to_str().unwrap(), base.to_str().unwrap()]);
    assert_eq!(code, Some(0), "a run against itself: {out}");
    let (code, out, _) = loadtest(&[
        "compare",
        base.to_str().unwrap(),
        slower.to_str().unwrap(),
        "--tolerance",
        "10%",
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("REGRESSION"), "{out}");
    let (code, _, _) = loadtest(&[
        "compare",
        base.to_str().unwrap(),
        slower.to_str().unwrap(),
        "--tolerance",
        "150%",
    ]);
    assert_eq!(code, Some(0), "within a 150% tolerance");
    let (code, _, err) = loadtest(&["compare", base.to_str().unwrap(), "/no/such.json"]);
    assert_eq!(code, Some(3));
    assert!(err.contains("/no/such.json"), "{err}");
}

#[test]
fn shards_merge_into_one_exact_report() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: sharded\nload: {model: open, stages: [{duration: 2s, rate: 600}]}\n\
         keyspaces: {k: {prefix: 'k:', count: 1000}}\noperations:\n  - {op: keyvalue.set, keys: k}\n  - {op: keyvalue.get, keys: k}\n\
         thresholds: ['error_rate < 1%']\n",
    );
    let mut runs = Vec::new();
    for shard in ["0/2", "1/2"] {
        let out = dir.path().join(shard.replace('/', "of"));
        let (code, stdout, err) = loadtest(&[
            "run",
            &scenario,
            "--shard",
            shard,
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]);
        assert_eq!(code, Some(0), "{stdout}\n{err}");
        runs.push(out.join("run.json"));
    }
    let read = |p: &Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    let counts: Vec<u64> = runs
        .iter()
        .map(|r| read(r)["total"]["count"].as_u64().unwrap())
        .collect();
    for c in &counts {
        assert!((540..=660).contains(c), "each shard sends half of 600/s for 2 s: {c}");
    }
    let merged_dir = dir.path().join("merged");
    let mut args = vec!["merge".to_string()];
    args.extend(runs.iter().map(|r| r.to_string_lossy().into_owned()));
    args.extend(["--out".to_string(), merged_dir.to_string_lossy().into_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = loadtest(&args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let merged = read(&merged_dir.join("run.json"));
    assert_eq!(merged["total"]["count"].as_u64().unwrap(), counts.iter().sum::<u64>());
    assert_eq!(merged["merged_runs"].as_u64(), Some(2));
    let p99s: Vec<u64> = runs
        .iter()
        .map(|r| read(r)["total"]["latency"]["p99_us"].as_u64().unwrap())
        .collect();
    let merged_p99 = merged["total"]["latency"]["p99_us"].as_u64().unwrap();
    assert!(
        *p99s.iter().min().unwrap() <= merged_p99 && merged_p99 <= *p99s.iter().max().unwrap(),
        "merged p99 {merged_p99} lies between the shards' {p99s:?}"
    );
    // Merging the same shard twice is refused.
    let (code, _, err) = loadtest(&[
        "merge",
        runs[0].to_str().unwrap(),
        runs[0].to_str().unwrap(),
        "--out",
        "/tmp/x",
    ]);
    assert_eq!(code, Some(3));
    assert!(err.contains("appears twice"), "{err}");
}

#[test]
fn open_model_rate_is_accurate_when_the_server_keeps_up() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: rate\nload: {model: open, warmup: 1s, stages: [{duration: 11s, rate: 1000}]}\n\
         keyspaces: {k: {count: 100}}\noperations:\n  - {op: keyvalue.get, keys: k}\n",
    );
    let out = dir.path().join("out");
    let (code, stdout, err) = loadtest(&["run", &scenario, "--out", out.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let count = run["total"]["count"].as_u64().unwrap();
    assert!(
        (9_900..=10_100).contains(&count),
        "10 s at 1000/s gave {count} responses (1% tolerance)"
    );
    assert_eq!(run["dropped"].as_u64(), Some(0));
}

// The guard only orders whole tests (each with its own runtime) against each other.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_beyond_max_in_flight_are_dropped_and_counted() {
    let _serial = timing();
    let addr = serve(|_| Ok(DELAY)).await;
    // 200/s against a 20 ms server with one request allowed in flight: about 50/s fit.
    let (code, out, run) = run_scenario(format!(
        "name: overload\ntarget: {{endpoint: 'http://{addr}'}}\n\
         load: {{model: open, max_in_flight: 1, stages: [{{duration: 2s, rate: 200}}]}}\n\
         keyspaces: {{k: {{count: 10}}}}\noperations:\n  - {{op: keyvalue.get, keys: k}}\n\
         thresholds: ['achieved_rate >= 95%']\n"
    ))
    .await;
    assert_eq!(code, Some(2), "achieved_rate threshold must fail: {out}");
    let (scheduled, dropped, count) = (
        run["scheduled"].as_u64().unwrap(),
        run["dropped"].as_u64().unwrap(),
        run["total"]["count"].as_u64().unwrap(),
    );
    assert_eq!(
        scheduled,
        dropped + count,
        "every arrival is either answered or counted as dropped"
    );
    assert!(dropped > 200, "dropped {dropped} of {scheduled}");
    assert!(out.contains("dropped"), "the summary mentions the drops");
}

#[test]
fn every_shipped_scenario_validates() {
    let _serial = timing();
    let files: Vec<String> = std::fs::read_dir("../scenarios")
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    assert!(files.len() >= 9, "shipped scenarios: {files:?}");
    // Scenarios with http.* operations validate only in a build with the `http` feature;
    // without it, each is refused with a message naming the feature.
    let (http, grpc): (Vec<&String>, Vec<&String>) = files.iter().partition(|f| {
        let text = std::fs::read_to_string(f).unwrap();
        text.contains("op: http.")
    });
    assert!(!http.is_empty() && !grpc.is_empty(), "{files:?}");
    let mut args = vec!["validate"];
    args.extend(grpc.iter().map(|s| s.as_str()));
    if cfg!(feature = "http") {
        args.extend(http.iter().map(|s| s.as_str()));
    }
    let (code, out, err) = loadtest(&args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    if !cfg!(feature = "http") {
        for file in http {
            let (code, _, err) = loadtest(&["validate", file]);
            assert_eq!(code, Some(3), "{file}");
            assert!(err.contains("needs loadtest built with the `http` feature"), "{err}");
        }
    }
}

#[test]
fn every_interface_runs_and_pubsub_delivery_is_measured() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: all\nload: {model: open, warmup: 500ms, stages: [{duration: 3s, rate: 400}]}\n\
         keyspaces: {k: {prefix: 'k:', count: 100}}\noperations:\n\
         \x20 - {op: keyvalue.set, keys: k}\n  - {op: keyvalue.exists, keys: k}\n  - {op: keyvalue.scan, keys: k, batch: 10}\n\
         \x20 - {op: keyvalue.batch_get, keys: k, batch: 5}\n  - {op: keyvalue.batch_set, keys: k, batch: 5}\n\
         \x20 - {op: pubsub.publish, keys: t, subscribers: 2}\n  - {op: queue.enqueue, keys: q}\n  - {op: queue.receive_ack, keys: q}\n\
         \x20 - {op: timeseries.append, keys: m, batch: 3}\n  - {op: timeseries.append_columns, keys: m, batch: 5}\n\
         \x20 - {op: timeseries.query, keys: m}\n  - {op: timeseries.aggregate, keys: m}\n\
         thresholds: ['error_rate < 0.1%']\n",
    );
    let out_dir = dir.path().join("out");
    let (code, out, err) = loadtest(&["run", &scenario, "--out", out_dir.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out_dir.join("run.json")).unwrap()).unwrap();
    let ops = run["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 13, "12 operations + pubsub.delivery");
    for o in ops {
        assert!(o["count"].as_u64().unwrap() > 0, "{} never ran", o["operation"]);
        assert_eq!(o["errors"].as_u64(), Some(0), "{}: {}", o["operation"], o["codes"]);
    }
    let publish = ops.iter().find(|o| o["operation"] == "pubsub.publish").unwrap()["count"]
        .as_u64()
        .unwrap();
    let delivered = ops.iter().find(|o| o["operation"] == "pubsub.delivery").unwrap()["count"]
        .as_u64()
        .unwrap();
    // Two subscribers each receive every message published after warm-up.
    assert!(
        delivered >= 2 * publish * 9 / 10 && delivered <= 2 * publish + 10,
        "{delivered} deliveries for {publish} publishes"
    );
}

/// The classic coordinated-omission case: one client waits out a 500 ms stall (once, a
/// second into the run), so only one slow sample is taken while hundreds of requests
/// were held back. The corrected histogram must show the stall at p99.9; the raw
/// service time must not.
// The guard only orders whole tests (each with its own runtime) against each other.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_shows_in_corrected_latency_not_in_service_time() {
    let _serial = timing();
    let first = std::sync::OnceLock::<std::time::Instant>::new();
    let stalled = std::sync::atomic::AtomicBool::new(false);
    let addr = serve(move |_| {
        let since = first.get_or_init(std::time::Instant::now).elapsed();
        if since > Duration::from_secs(1) && !stalled.swap(true, std::sync::atomic::Ordering::SeqCst) {
            Ok(Duration::from_millis(500))
        } else {
            Ok(Duration::ZERO)
        }
    })
    .await;
    let (code, out, run) = run_scenario(format!(
        "name: stall\ntarget: {{endpoint: 'http://{addr}', channels: 1}}\n\
         load: {{model: closed, stages: [{{duration: 4s, concurrency: 1}}]}}\n\
         keyspaces: {{k: {{count: 10}}}}\noperations:\n  - {{op: keyvalue.get, keys: k}}\n"
    ))
    .await;
    assert_eq!(code, Some(0), "{out}");
    let op = &run["operations"][0];
    let corrected = op["latency"]["p99_9_us"].as_u64().unwrap();
    let service = op["service_time"]["p99_9_us"].as_u64().unwrap();
    assert!(
        op["service_time"]["max_us"].as_u64().unwrap() >= 500_000,
        "the stall itself was measured once"
    );
    assert!(
        corrected >= 100_000,
        "corrected p99.9 {corrected} us must reflect the 500 ms stall"
    );
    assert!(
        service < 50_000,
        "uncorrected p99.9 {service} us hides it (one sample in thousands)"
    );
}

// The guard only orders whole tests (each with its own runtime) against each other.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_and_metadata_reach_the_server() {
    let _serial = timing();
    let addr = serve(|metadata| {
        let header = |k: &str| {
            metadata
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        if header("authorization") == "Bearer s3cret" && header("x-tenant") == "blue" {
            Ok(Duration::ZERO)
        } else {
            Err(Status::unauthenticated("no token"))
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let scenario = |auth: &str| {
        format!(
            "name: auth\ntarget: {{endpoint: 'http://{addr}', metadata: {{x-tenant: blue}}, auth: {auth}}}\n\
             load: {{model: closed, stages: [{{duration: 1s, concurrency: 2}}]}}\n\
             keyspaces: {{k: {{count: 10}}}}\noperations:\n  - {{op: keyvalue.get, keys: k}}\n\
             thresholds: ['error_rate < 1%']\n"
        )
    };
    let (code, out, run) = run_scenario(scenario(&format!("{{bearer_file: '{}'}}", token.display()))).await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(run["total"]["errors"].as_u64(), Some(0));
    // A wrong token: every request is refused and the threshold fails.
    std::fs::write(&token, "wrong").unwrap();
    let (code, _, run) = run_scenario(scenario(&format!("{{bearer_file: '{}'}}", token.display()))).await;
    assert_eq!(code, Some(2));
    assert!(
        run["total"]["codes"]["UNAUTHENTICATED"].as_u64().unwrap() > 0,
        "{}",
        run["total"]["codes"]
    );
    // A variable that is not set is an error naming it.
    let path = write(
        dir.path(),
        "env.yaml",
        &scenario("{bearer_env: PRISM_TEST_NO_SUCH_TOKEN}"),
    );
    let (code, _, err) = tokio::task::spawn_blocking(move || loadtest(&["run", &path, "--quiet"]))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(err.contains("PRISM_TEST_NO_SUCH_TOKEN"), "{err}");
}

#[test]
fn set_overrides_scenario_values() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    let scenario = write(
        dir.path(),
        "s.yaml",
        "name: base\nload: {model: open, stages: [{duration: 1s, rate: 50}]}\n\
         keyspaces: {k: {count: 10}}\noperations:\n  - {op: keyvalue.get, keys: k}\n",
    );
    let out = dir.path().join("out");
    let (code, stdout, err) = loadtest(&[
        "run",
        &scenario,
        "--set",
        "load.stages[0].rate=300",
        "--set",
        "name=overridden",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, Some(0), "{stdout}\n{err}");
    let run: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["scenario"]["name"], "overridden");
    assert_eq!(run["scheduled"].as_u64(), Some(300), "1 s at the overridden 300/s");
    let (code, _, err) = loadtest(&["run", &scenario, "--set", "load.stages[5].rate=1", "--quiet"]);
    assert_eq!(code, Some(3));
    assert!(
        err.contains("--set load.stages[5].rate=1") && err.contains("past the end"),
        "{err}"
    );
}

#[test]
fn shipped_json_schema_is_current_and_strict() {
    let _serial = timing();
    let (code, generated, _) = loadtest(&["schema"]);
    assert_eq!(code, Some(0));
    let shipped = std::fs::read_to_string("scenario.schema.json").unwrap();
    assert_eq!(
        generated, shipped,
        "regenerate: cargo run -p loadtest -- schema > loadtest/scenario.schema.json"
    );
    let schema: serde_json::Value = serde_json::from_str(&shipped).unwrap();
    assert_eq!(
        schema["additionalProperties"], false,
        "unknown top-level keys are rejected"
    );
    assert!(schema["$defs"]["Operation"]["properties"]["op"].is_object());
}

// The guard only orders whole tests (each with its own runtime) against each other.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_target_checks_the_server_certificate() {
    let _serial = timing();
    let dir = tempfile::tempdir().unwrap();
    // A test authority, and a certificate for `prism.test` it signed.
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["prism.test".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let cert_file = write(dir.path(), "server.pem", &cert.pem());
    let key_file = write(dir.path(), "server.key", &key.serialize_pem());

    // The proxy serving gRPC over TLS with that certificate.
    use prism_proxy::config::{BackendConfig, Config, NamespaceConfig};
    let mut config = Config::ephemeral([("default".to_string(), NamespaceConfig::new(BackendConfig::memstore()))]);
    config.tls = Some(prism_proxy::config::TlsConfig {
        cert_file: cert_file.into(),
        key_file: key_file.into(),
    });
    let proxy = prism_proxy::server::start(&config).await.expect("TLS proxy");
    let scenario = |tls: &str| {
        format!(
            "name: tls\ntarget: {{endpoint: 'https://{}', {tls}}}\n\
             load: {{model: closed, stages: [{{duration: 1s, concurrency: 2}}]}}\n\
             keyspaces: {{k: {{count: 10}}}}\noperations:\n  - {{op: keyvalue.get, keys: k}}\n\
             thresholds: ['error_rate < 1%']\n",
            proxy.grpc_addr
        )
    };
    // Trusting the test authority and expecting its name: every request succeeds.
    let (code, out, run) = run_scenario(scenario(&format!("ca_file: '{ca_file}', server_name: prism.test"))).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(run["total"]["count"].as_u64().unwrap() > 0, "{}", run["total"]);
    assert_eq!(run["total"]["errors"].as_u64(), Some(0));

    // Without the authority (system roots only) or with the wrong name, the connection is
    // refused with an error saying why, and nothing is sent.
    for tls in [
        "server_name: prism.test".to_string(),
        format!("ca_file: '{ca_file}', server_name: other.test"),
    ] {
        let path = write(dir.path(), "bad.yaml", &scenario(&tls));
        let (code, _, err) = tokio::task::spawn_blocking(move || loadtest(&["run", &path, "--quiet"]))
            .await
            .unwrap();
        assert_eq!(code, Some(1), "{tls}: {err}");
        assert!(
            err.contains("cannot connect") && err.to_lowercase().contains("certificate"),
            "{tls}: {err}"
        );
    }

    // A CA file that cannot be read, or TLS settings on a plain endpoint, are named.
    let path = write(dir.path(), "missing.yaml", &scenario("ca_file: /no/such/ca.pem"));
    let (code, _, err) = tokio::task::spawn_blocking(move || loadtest(&["run", &path, "--quiet"]))
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(
        err.contains("target.ca_file") && err.contains("/no/such/ca.pem"),
        "{err}"
    );
    let plain = write(
        dir.path(),
        "plain.yaml",
        &scenario(&format!("ca_file: '{ca_file}'")).replace("https://", "http://"),
    );
    let (code, _, err) = tokio::task::spawn_blocking(move || loadtest(&["validate", &plain]))
        .await
        .unwrap();
    assert_eq!(code, Some(3));
    assert!(
        err.contains("target.ca_file: only used with an https:// endpoint"),
        "{err}"
    );
    proxy.drain(Duration::from_secs(2)).await;
}

/// `abort_on_fail` stops the `http.*` part on goose too: a 30 s run of HTTP requests
/// (against the embedded proxy's admin listener) whose rule fails ends within seconds.
#[allow(clippy::await_holding_lock)]
#[cfg(feature = "http")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_on_fail_stops_the_http_part_too() {
    let _serial = timing();
    let yaml = "name: http-abort\nload: {model: closed, stages: [{duration: 30s, concurrency: 2}]}\n\
                operations: [{op: http.get, path: /healthz}]\nthresholds: ['max < 1us abort_on_fail']\n"
        .to_string();
    stops_early(yaml).await;
}

/// Runs `yaml`, a run of 20 s or more whose abort rule fails: it exits 2, stopped early,
/// within 15 s.
async fn stops_early(yaml: String) {
    let started = std::time::Instant::now();
    let (code, out, run) = run_scenario(yaml).await;
    assert_eq!(code, Some(2), "{out}");
    assert!(
        run["failures"].to_string().contains("stopped early at"),
        "{}",
        run["failures"]
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "stopped early, yet it took {:?}",
        started.elapsed()
    );
}

// The guard only orders whole tests (each with its own runtime) against each other.
#[allow(clippy::await_holding_lock)]
#[cfg(feature = "http")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_operations_run_on_goose_into_the_same_report() {
    let _serial = timing();
    // An HTTP server that records what it receives.
    type Seen = Arc<Mutex<Vec<(String, String, String)>>>;
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/items/{id}",
            axum::routing::post(
                |axum::extract::State(seen): axum::extract::State<Seen>,
                 axum::extract::Path(id): axum::extract::Path<String>,
                 headers: axum::http::HeaderMap,
                 body: String| async move {
                    let tenant = headers
                        .get("x-tenant")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    seen.lock().unwrap().push((id, tenant, body));
                    "stored"
                },
            ),
        )
        .route(
            "/fail",
            axum::routing::get(|| async { (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no") }),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    // The gRPC side: a server answering every Get at once.
    let grpc = serve(|_| Ok(Duration::ZERO)).await;

    let yaml = format!(
        "name: http\ntarget: {{endpoint: 'http://{grpc}', http_endpoint: 'http://{addr}'}}\n\
         load: {{model: closed, stages: [{{duration: 2s, concurrency: 4}}]}}\n\
         keyspaces: {{k: {{prefix: 'item-', count: 5}}}}\noperations:\n  \
         - {{op: keyvalue.get, keys: k, weight: 2}}\n  \
         - {{op: http.post, path: '/items/{{key}}', keys: k, headers: {{x-tenant: blue}}, body: 'n={{n}}', weight: 1}}\n  \
         - {{op: http.get, path: /fail, weight: 1}}\n"
    );
    let (code, out, run) = run_scenario(yaml).await;
    assert_eq!(code, Some(0), "{out}");
    let op = |name: &str| {
        run["operations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["operation"] == name)
            .unwrap_or_else(|| panic!("no {name} in {}", run["operations"]))
            .clone()
    };
    let (grpc_get, post, fail) = (op("keyvalue.get"), op("http.post:/items/{key}"), op("http.get:/fail"));
    assert!(grpc_get["count"].as_u64().unwrap() > 0, "{grpc_get}");
    let posts = post["count"].as_u64().unwrap();
    assert!(posts > 0 && post["errors"].as_u64() == Some(0), "{post}");
    assert!(fail["count"].as_u64().unwrap() > 0, "{fail}");
    assert_eq!(fail["errors"], fail["count"], "every /fail answer is an error: {fail}");
    assert!(fail["codes"]["HTTP_5XX"].as_u64().unwrap() > 0, "{fail}");
    // Templates, headers and bodies reached the server; every recorded post was received.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len() as u64, posts, "posts recorded vs received");
    assert!(
        seen.iter()
            .all(|(id, tenant, body)| id.starts_with("item-") && tenant == "blue" && body.starts_with("n="))
    );
}

/// Extreme numbers that once panicked the binary (exit 101) or let a run grow without
/// bound are validation errors naming the field, from `validate` and from `run` alike.
#[test]
fn extreme_numbers_are_validation_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "load: {model: open, stages: [{duration: 18446744073709551615s, rate: 1}, {duration: 18446744073709551615s, rate: 1}]}",
            "load.stages: the stages last longer than the longest run",
        ),
        (
            "load: {model: open, max_in_flight: 18446744073709551615, stages: [{duration: 1s, rate: 1}]}",
            "load.max_in_flight: 18446744073709551615 is not in 1..=1000000",
        ),
        (
            "load: {model: closed, stages: [{duration: 1s, concurrency: 100000}]}",
            "operations[0].value_size: 100000 requests in flight with values up to 16777216 bytes",
        ),
    ];
    for (i, (load, expected)) in cases.iter().enumerate() {
        let path = write(
            dir.path(),
            &format!("extreme{i}.yaml"),
            &format!(
                "name: extreme\n{load}\nkeyspaces: {{k: {{count: 10}}}}\noperations:\n  - {{op: keyvalue.set, keys: k, value_size: 16777216}}\n"
            ),
        );
        for command in ["validate", "run"] {
            let (code, _, err) = loadtest(&[command, &path]);
            assert_eq!(code, Some(3), "{command} {load}: {err}");
            assert!(err.contains(expected), "{command}: missing {expected:?} in:\n{err}");
        }
    }
}

#[test]
fn http_operations_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.yaml",
        "name: bad\ntarget: {endpoint: 'http://127.0.0.1:1'}\n\
         load: {model: closed, stages: [{duration: 1s, concurrency: 1}]}\noperations:\n  \
         - {op: http.get}\n  - {op: http.get, path: nope, body: x}\n  - {op: keyvalue.get, keys: k, path: /x}\n",
    );
    let (code, _, err) = loadtest(&["validate", &path]);
    assert_eq!(code, Some(3));
    for expected in [
        "operations[0].path: http.get needs a path",
        "operations[1].path: \"nope\" must start with /",
        "operations[1].body: only http.post takes a body",
        "operations[2]: path, headers and body are for http.* operations",
        "target.http_endpoint",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

/// The Kubernetes Job of `deploy/k8s/job.yaml`: its own numbers of pods and shards agree,
/// and its own command, run as N local processes the way the Job starts them (its
/// environment, `JOB_COMPLETION_INDEX`), gives N shards that merge into one report whose
/// counts are the shards' sum. The pod's exit code is the worker's: a failed threshold
/// fails every pod with 2, and the merge re-checks it. Only the paths and the hold time
/// are changed from the manifest, and `kubectl` is not involved (no cluster here).
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_job_runs_its_shards_and_they_merge() {
    let _serial = timing();
    let manifest: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/k8s/job.yaml")).unwrap(),
    )
    .unwrap();
    let spec = &manifest["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let container = &spec["template"]["spec"]["containers"][0];
    let env: std::collections::BTreeMap<String, String> = container["env"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let shards: u64 = env["SHARDS"].parse().unwrap();
    assert_eq!(spec["completions"].as_u64(), Some(shards), "completions = SHARDS");
    assert_eq!(spec["parallelism"].as_u64(), Some(shards), "parallelism = SHARDS");
    assert_eq!(container["command"][0].as_str(), Some("/bin/sh"));
    let script = container["args"][0].as_str().unwrap().to_string();

    let addr = serve(|_| Ok(Duration::ZERO)).await;
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_loadtest"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap_or_default());
    for (threshold, code) in [("error_rate < 1%", 0), ("p99 < 1us", 2)] {
        let dir = tempfile::tempdir().unwrap();
        let scenario = write(
            dir.path(),
            "scenario.yaml",
            &format!(
                "name: job\ntarget: {{endpoint: 'http://{addr}'}}\n\
                 load: {{model: open, stages: [{{duration: 2s, rate: 400}}]}}\n\
                 keyspaces: {{k: {{prefix: 'k:', count: 1000}}}}\noperations: [{{op: keyvalue.get, keys: k}}]\n\
                 thresholds: ['{threshold}']\n"
            ),
        );
        let results = dir.path().join("results");
        let pods: Vec<std::process::Child> = (0..shards)
            .map(|index| {
                Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&script)
                    .envs(&env)
                    .env("SCENARIO", &scenario)
                    .env("RESULTS", &results)
                    .env("HOLD_SECONDS", "0")
                    .env("JOB_COMPLETION_INDEX", index.to_string())
                    .env("PATH", &path)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outputs = tokio::task::spawn_blocking(move || {
            pods.into_iter()
                .map(|p| p.wait_with_output().unwrap())
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        for (index, out) in outputs.iter().enumerate() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(code),
                "pod {index} with {threshold}: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.contains(&format!("exit {code}")), "{stdout}");
        }
        let runs: Vec<String> = (0..shards)
            .map(|i| {
                results
                    .join(format!("shard-{i}/run.json"))
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        let counts: Vec<u64> = runs
            .iter()
            .map(|r| {
                let run: serde_json::Value = serde_json::from_slice(&std::fs::read(r).unwrap()).unwrap();
                run["total"]["count"].as_u64().unwrap()
            })
            .collect();
        for c in &counts {
            let share = 800 / shards;
            assert!(
                c.abs_diff(share) <= share / 5,
                "each shard sends its quarter of 400/s for 2 s: {counts:?}"
            );
        }
        let merged = dir.path().join("merged");
        let mut args = vec!["merge"];
        args.extend(runs.iter().map(String::as_str));
        args.extend(["--out", merged.to_str().unwrap()]);
        let (merge_code, out, err) = loadtest(&args);
        assert_eq!(merge_code, Some(code), "merge with {threshold}: {out}\n{err}");
        let run: serde_json::Value = serde_json::from_slice(&std::fs::read(merged.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["total"]["count"].as_u64(), Some(counts.iter().sum::<u64>()));
        assert_eq!(run["merged_runs"].as_u64(), Some(shards));
    }
}

/// Every manifest under `deploy/k8s/` against the Kubernetes 1.32 schemas, strictly
/// (unknown fields refused), with the real `kubernetes-validate` (PyPI; ci/test.sh
/// installs it and sets `KUBERNETES_VALIDATE`). A copy with a misspelt field must fail,
/// so a validator that accepts everything cannot pass this.
#[test]
fn deploy_manifests_validate_against_the_kubernetes_schemas() {
    let tool = std::env::var("KUBERNETES_VALIDATE").unwrap_or_else(|_| "kubernetes-validate".into());
    let validate = |file: &Path| {
        Command::new(&tool)
            .args(["--strict", "-k", "1.32.0"])
            .arg(file)
            .output()
            .unwrap_or_else(|e| {
                panic!("{tool}: {e}; `pip install kubernetes-validate` or run ci/test.sh, which installs it")
            })
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/k8s");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_some_and(|e| e == "yaml") {
            let out = validate(&file);
            assert!(
                out.status.success(),
                "{}: {}{}",
                file.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked > 0, "no manifest in {}", dir.display());
    let tmp = tempfile::tempdir().unwrap();
    let job = std::fs::read_to_string(dir.join("job.yaml")).unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(&bad, job.replace("parallelism:", "paralelism:")).unwrap();
    assert!(!validate(&bad).status.success(), "a misspelt field passed validation");
}
