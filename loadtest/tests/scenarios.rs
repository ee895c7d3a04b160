//! Several scenarios in one file and `over` window thresholds, end to end: the real
//! `loadtest` binary against the proxy it starts in-process (memstore), over gRPC on
//! a socket.

// Tests panic on failure by design.
#![allow(clippy::unwrap_used)]

mod support;

use serde_json::Value;
use support::{loadtest, run, write};

fn ops(run: &Value) -> Vec<&Value> {
    run["operations"].as_array().unwrap().iter().collect()
}

fn verdict<'a>(run: &'a Value, rule: &str) -> &'a Value {
    run["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["threshold"] == rule)
        .unwrap_or_else(|| panic!("no verdict for {rule}: {}", run["thresholds"]))
}

/// The largest value of `pick` over the seconds of the series.
fn worst_second(run: &Value, pick: impl Fn(&Value) -> u64) -> (u64, u64) {
    run["time_series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (pick(s), s["second"].as_u64().unwrap()))
        .max()
        .unwrap()
}

const TWO: &str = "name: two\nseed: 3\nkeyspaces: {users: {prefix: 'u:', count: 500}}\nscenarios:\n  \
background:\n    load: {model: open, stages: [{duration: 4s, rate: 300}]}\n    operations:\n      \
- {op: keyvalue.get, weight: 3, keys: users}\n      - {op: keyvalue.set, weight: 1, keys: users, value_size: 64}\n  \
probe:\n    start: 2s\n    load: {model: closed, stages: [{duration: 3s, concurrency: 1}], think_time: 5ms}\n    \
operations:\n      - {op: keyvalue.get, keys: users}\n";

/// An open-model background (0-4 s) and a closed-model probe started 2 s later (2-5 s)
/// run at the same time, each with its own load; results are per operation
/// (`<scenario>/<op>`), per scenario and in total, and add up; thresholds judge only what
/// they are scoped to.
#[test]
fn several_scenarios_run_at_once_each_with_its_own_load_start_and_results() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{TWO}thresholds:\n  - 'error_rate < 1% for keyvalue.get in background'\n  - 'p99 < 30s in probe'\n  \
         - 'max < 1us in probe'\n  - 'p99 < 3600s for keyvalue.get in probe over 1s'\n  - 'p99 < 30s for keyvalue.get'\n"
    );
    let path = write(dir.path(), "two.yaml", &text);
    let began = std::time::Instant::now();
    let (code, stdout, stderr, run) = run(&path, dir.path());
    // The probe really starts late: the run lasts until it ends, 5 s in.
    assert!(
        began.elapsed() >= std::time::Duration::from_secs(5),
        "{:?}",
        began.elapsed()
    );
    let run = run.unwrap_or_else(|| panic!("no run.json: {stderr}"));
    assert_eq!(code, Some(2), "`max < 1us in probe` fails: {stdout}{stderr}");
    let names: Vec<&str> = ops(&run).iter().map(|o| o["operation"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "background/keyvalue.get",
            "background/keyvalue.set",
            "probe/keyvalue.get"
        ]
    );
    let scenarios = run["scenarios"].as_array().unwrap();
    let (background, probe) = (&scenarios[0], &scenarios[1]);
    assert_eq!(background["name"], "background");
    assert_eq!(background["model"], "open");
    assert_eq!(probe["model"], "closed");
    assert_eq!(probe["start_s"], 2.0);
    assert_eq!(probe["measured_from_s"], 2.0);
    // The open model's schedule is exact: 300/s for 4 s.
    assert_eq!(background["scheduled"], 1200, "{background}");
    assert_eq!(background["total"]["operation"], "background/all");
    let count = |v: &Value| v["count"].as_u64().unwrap();
    let by_op: u64 = ops(&run).iter().map(|o| count(o)).sum();
    assert_eq!(count(&background["total"]) + count(&probe["total"]), by_op);
    assert_eq!(count(&run["total"]), by_op);
    assert_eq!(count(&background["total"]), count(ops(&run)[0]) + count(ops(&run)[1]));
    // Its rate is over its own 3 measured seconds, not the run's 5.
    let probe_rate = ops(&run)[2]["rate_per_s"].as_f64().unwrap();
    assert!(
        (probe_rate - count(ops(&run)[2]) as f64 / 3.0).abs() < 1e-6,
        "{probe_rate}"
    );

    // Each second's share: the probe answers only from its start, while the background runs.
    let series = run["time_series"].as_array().unwrap();
    let share = |s: usize, part: usize, field: &str| series[s]["scenarios"][part][field].as_u64().unwrap();
    for s in 0..2 {
        assert_eq!(share(s, 1, "completed"), 0, "second {s}: the probe has not started");
        assert!(share(s, 0, "completed") > 0, "second {s}");
    }
    for (s, second) in series.iter().enumerate().take(4).skip(2) {
        assert!(
            share(s, 1, "completed") > 0 && share(s, 0, "completed") > 0,
            "second {s}: both at once: {second}"
        );
    }
    assert!(
        share(4, 1, "completed") > 0 && share(4, 0, "completed") == 0,
        "{}",
        series[4]
    );
    let probe_stages = probe["stages"].as_array().unwrap();
    assert_eq!(probe_stages.len(), 1);
    assert_eq!(probe_stages[0]["completed"].as_u64(), Some(count(&probe["total"])));

    // Scoped verdicts judge exactly their scope.
    let max = verdict(&run, "max < 1us in probe");
    assert_eq!(max["passed"], false);
    assert_eq!(max["actual"].as_f64(), probe["total"]["latency"]["max_us"].as_f64());
    assert_eq!(verdict(&run, "p99 < 30s in probe")["passed"], true);
    let background_get = verdict(&run, "error_rate < 1% for keyvalue.get in background");
    assert_eq!(background_get["passed"], true);
    assert_eq!(background_get["actual"], 0.0);
    // An operation named without `in`: the same operation of every scenario together.
    let both = verdict(&run, "p99 < 30s for keyvalue.get");
    assert!(both["passed"].as_bool().unwrap());
    // A window of one second on the probe's operation: its worst second's p99.
    let window = verdict(&run, "p99 < 3600s for keyvalue.get in probe over 1s");
    let (worst, at) = worst_second(&run, |s| s["op_p99_us"][2].as_u64().unwrap());
    assert_eq!(window["actual"].as_f64(), Some(worst as f64), "{window}");
    assert_eq!(window["window_end_s"].as_u64(), Some(at + 1));

    for needle in [
        "scenario",
        "background/all",
        "probe/all",
        "closed",
        "threshold max < 1us in probe",
    ] {
        assert!(stdout.contains(needle), "{needle}: {stdout}");
    }
}

/// Every mistake of a file of several scenarios is reported at once, each at its line.
#[test]
fn a_file_of_several_scenarios_is_checked_at_each_place() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: bad\nkeyspaces: {users: {count: 10}}\nscenarios:\n  fast:\n    load:\n      model: open\n      \
stages:\n        - {duration: 2s, rate: -5}\n    operations:\n      - {op: keyvalue.get, keys: nosuch}\n  \
bad name:\n    load: {model: closed, stages: [{duration: 1s, concurrency: 1}]}\n    operations: [{op: keyvalue.get, keys: users}]\n\
thresholds:\n  - 'p99 < 5ms in slow'\n  - 'p99 < 5ms for keyvalue.scan in fast'\n  - 'p99 < 5ms in fast over 10s'\n";
    let path = write(dir.path(), "bad.yaml", text);
    let (code, _, stderr) = loadtest(&["validate", &path]);
    assert_eq!(code, Some(3), "{stderr}");
    for (line, needle) in [
        (8, "scenarios.fast.load.stages[0].rate: -5 is not a rate"),
        (10, "scenarios.fast.operations[0].keys: no keyspace \"nosuch\""),
        (11, "scenarios.bad name: a scenario's name is letters"),
        (15, "no scenario \"slow\" (the file has: bad name, fast)"),
        (16, "scenario \"fast\" has no operation \"keyvalue.scan\""),
        (17, "a window of 10s is longer than the 2s measured"),
    ] {
        assert!(
            stderr
                .lines()
                .any(|l| l.contains(&format!("bad.yaml:{line}:")) && l.contains(needle)),
            "line {line}: {needle}: {stderr}"
        );
    }

    // Both forms at once, and `in` in a file of one scenario.
    let mixed = format!(
        "{TWO}load: {{model: open, stages: [{{duration: 1s, rate: 1}}]}}\noperations: [{{op: keyvalue.get, keys: users}}]\n"
    );
    let (code, _, stderr) = loadtest(&["validate", &write(dir.path(), "both.yaml", &mixed)]);
    assert_eq!(code, Some(3));
    assert!(stderr.contains("or `scenarios` (several), not both"), "{stderr}");
    let single = "name: one\nload: {model: open, stages: [{duration: 1s, rate: 1}]}\nkeyspaces: {k: {count: 1}}\n\
operations: [{op: keyvalue.get, keys: k}]\nthresholds: ['p99 < 5ms in probe']\n";
    let (code, _, stderr) = loadtest(&["validate", &write(dir.path(), "one.yaml", single)]);
    assert_eq!(code, Some(3));
    assert!(
        stderr.contains("one.yaml:5:") && stderr.contains("is for a file of several `scenarios`"),
        "{stderr}"
    );
    let (code, _, stderr) = loadtest(&["validate", &write(dir.path(), "none.yaml", "name: none\n")]);
    assert_eq!(code, Some(3));
    assert!(stderr.contains("or `scenarios` for several"), "{stderr}");
}

/// `over 1s`: the whole run's median is fast, but the seconds in which a 2 s stall of
/// the generator (SIGSTOP, as a busy machine or a pause would) is paid back are not;
/// the window rule fails and names the worst, the whole-run rule passes. A window of
/// one second on every operation holds exactly one second of the series (its p50, p99).
#[test]
fn window_thresholds_judge_every_window_and_name_the_worst() {
    let dir = tempfile::tempdir().unwrap();
    let text = "name: stall\nload: {model: open, stages: [{duration: 9s, rate: 200}]}\nkeyspaces: {k: {count: 100}}\n\
operations: [{op: keyvalue.get, keys: k}]\nthresholds:\n  - 'p50 < 100ms'\n  - 'p50 < 100ms over 1s'\n  \
- 'p99 < 3600s over 1s'\n  - 'p99 < 3600s over 3s'\n";
    let path = write(dir.path(), "stall.yaml", text);
    let out = dir.path().join("out");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["run", &path, "--out", out.to_str().unwrap(), "--quiet"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let signal = |s: &str| {
        let status = std::process::Command::new("kill").args([s, &pid]).status().unwrap();
        assert!(status.success());
    };
    std::thread::sleep(std::time::Duration::from_secs(4));
    signal("-STOP");
    std::thread::sleep(std::time::Duration::from_secs(2));
    signal("-CONT");
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let run: Value = serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stdout}");

    assert_eq!(verdict(&run, "p50 < 100ms")["passed"], true, "{stdout}");
    let window = verdict(&run, "p50 < 100ms over 1s");
    assert_eq!(window["passed"], false, "{stdout}");
    // A one-second window on every operation holds exactly one second of the series.
    let (worst_p50, worst_at) = worst_second(&run, |s| s["p50_us"].as_u64().unwrap());
    assert_eq!(window["actual"].as_f64(), Some(worst_p50 as f64), "{stdout}");
    assert_eq!(window["window_end_s"].as_u64(), Some(worst_at + 1), "{stdout}");
    assert!(
        stdout.contains(&format!("worst window ending at {} s", worst_at + 1)),
        "{stdout}"
    );
    let (worst_p99, worst_at) = worst_second(&run, |s| s["p99_us"].as_u64().unwrap());
    let one = verdict(&run, "p99 < 3600s over 1s");
    assert_eq!(one["actual"].as_f64(), Some(worst_p99 as f64));
    assert_eq!(one["window_end_s"].as_u64(), Some(worst_at + 1));
    // A longer window mixes the bad second with good ones: never worse than the worst
    // second's, and still holding the stall (latencies of up to its 2 s).
    let three = verdict(&run, "p99 < 3600s over 3s")["actual"].as_f64().unwrap();
    assert!(three <= worst_p99 as f64, "{three} > {worst_p99}");
    assert!(three >= 100_000.0, "{three}");

    // With abort_on_fail, a failing window stops the run as soon as it is full.
    let doomed = "name: doomed\nload: {model: open, stages: [{duration: 30s, rate: 50}]}\nkeyspaces: {k: {count: 10}}\n\
operations: [{op: keyvalue.get, keys: k}]\nthresholds: ['max < 1us over 2s abort_on_fail']\n";
    let (code, stdout, _, run) = support::run(&write(dir.path(), "doomed.yaml", doomed), dir.path());
    let run = run.unwrap();
    assert_eq!(code, Some(2));
    assert!(run["measured_s"].as_f64().unwrap() < 10.0, "{stdout}");
    assert!(stdout.contains("`max < 1us over 2s abort_on_fail` failed"), "{stdout}");
}
