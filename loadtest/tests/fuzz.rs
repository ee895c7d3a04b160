//! Fuzz harnesses (proptest, on stable): the scenario parser with `validate`, threshold
//! expressions, and the HdrHistogram log and run.json reading of `merge`, fed shipped
//! inputs with random edits and junk. Each must answer every input with a value or an
//! error naming the file, never a panic. `ci/fuzz.sh` runs them with many more cases;
//! the hours run and what they found are in `reports/baseline/fuzz.md`.

use std::path::Path;
use std::time::SystemTime;

use fuzz_input::{junk, mutated};
use hdrhistogram::Histogram;
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use loadtest::scenario::Scenario;
use loadtest::threshold::Threshold;
use proptest::prelude::*;

const QUICKSTART: &str = include_str!("../../scenarios/quickstart.yaml");
const MIXED: &str = include_str!("../../scenarios/mixed.yaml");
const PUBSUB: &str = include_str!("../../scenarios/pubsub-fanout.yaml");

/// A scenario's error names the file it came from.
fn parse_scenario(text: &str) {
    let path = Path::new("fuzz.yaml");
    if let Err(e) = Scenario::parse(text, path) {
        let message = e.to_string();
        assert!(message.contains("fuzz.yaml"), "error without the file name: {message}");
    }
}

/// A small interval log with two tags, as `loadtest run` writes beside run.json.
fn interval_log() -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut writer = IntervalLogWriterBuilder::new()
        .with_base_time(SystemTime::UNIX_EPOCH)
        .begin_log_with(&mut out, &mut serializer)
        .expect("log header");
    for (tag, value) in [("keyvalue.get", 120u64), ("keyvalue.set", 9000)] {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
        h.record(value).expect("record");
        writer
            .write_histogram(
                &h,
                std::time::Duration::from_secs(1),
                std::time::Duration::from_secs(1),
                Tag::new(tag),
            )
            .expect("interval");
    }
    drop(writer);
    out
}

/// `<metric> <op> <value><unit> [for <operation>]` with each part drawn from valid and
/// hostile pieces, so every branch of the parser is reached.
fn threshold_text() -> impl Strategy<Value = String> {
    let metric = proptest::sample::select(vec![
        "p99",
        "p99.9",
        "p0",
        "p100",
        "p101",
        "pNaN",
        "p",
        "max",
        "mean",
        "error_rate",
        "achieved_rate",
        "q99",
    ]);
    let op = proptest::sample::select(vec!["<", "<=", ">", ">=", "=", "=<"]);
    let number = prop_oneof![
        proptest::sample::select(vec!["5", "0", "-1", "1e309", "NaN", "inf", "0.1", ".", "", "1.5e3"])
            .prop_map(str::to_string),
        "\\PC{0,6}",
    ];
    let unit = proptest::sample::select(vec!["ms", "us", "s", "%", ""]);
    let tail = proptest::sample::select(vec!["", " for keyvalue.get", " for", " for a b"]);
    (metric, op, number, unit, tail).prop_map(|(m, o, n, u, t)| format!("{m} {o} {n}{u}{t}"))
}

/// A scenario built from extreme values in every numeric field, so validation (sums of
/// durations, rates times durations, values in flight) meets numbers edits rarely make.
fn extreme_scenario() -> impl Strategy<Value = String> {
    // Mostly well-typed, so most documents get past the parser into validation.
    let number = || {
        prop_oneof![
            9 => proptest::sample::select(vec!["0", "1", "1000", "4294967296", "18446744073709551615"]),
            1 => proptest::sample::select(vec!["-1", "1e309", ".nan", "0.5"]),
        ]
    };
    let duration = || {
        proptest::sample::select(vec![
            "1s",
            "0s",
            "10s",
            "18446744073709551615s",
            "18446744073709551615ms",
            "1ns",
        ])
    };
    let stage = prop_oneof![
        (duration(), number(), proptest::option::of(number())).prop_map(|(d, r, to)| match to {
            Some(to) => format!("    - {{ duration: {d}, rate: {r}, ramp_to: {to} }}\n"),
            None => format!("    - {{ duration: {d}, rate: {r} }}\n"),
        }),
        (duration(), number()).prop_map(|(d, c)| format!("    - {{ duration: {d}, concurrency: {c} }}\n")),
    ];
    (
        proptest::sample::select(vec!["open", "closed"]),
        duration(),
        number(),
        proptest::collection::vec(stage, 1..4),
        (number(), number(), number(), number()),
    )
        .prop_map(|(model, warmup, in_flight, stages, (count, weight, size, batch))| {
            format!(
                "name: x\nload:\n  model: {model}\n  warmup: {warmup}\n  max_in_flight: {in_flight}\n  stages:\n{}\
                 keyspaces:\n  k: {{ count: {count} }}\noperations:\n  - {{ op: keyvalue.set, weight: {weight}, keys: k, value_size: {size} }}\n\
                 \x20 - {{ op: keyvalue.batch_get, weight: 1, keys: k, batch: {batch} }}\n",
                stages.concat()
            )
        })
}

proptest! {
    #[test]
    fn the_scenario_parser_answers_extreme_numbers(text in extreme_scenario()) {
        parse_scenario(&text);
    }

    #[test]
    fn the_scenario_parser_answers_every_edit_of_a_shipped_scenario(
        text in prop_oneof![mutated(QUICKSTART), mutated(MIXED), mutated(PUBSUB)]
    ) {
        parse_scenario(&text);
    }

    #[test]
    fn the_scenario_parser_answers_junk(text in junk()) {
        parse_scenario(&text);
    }

    #[test]
    fn threshold_expressions_parse_or_say_what_is_expected(
        text in prop_oneof![
            2 => threshold_text(),
            1 => mutated("p99.9 < 20ms for keyvalue.get"),
            1 => mutated("error_rate < 0.1%"),
            1 => junk(),
        ]
    ) {
        match text.parse::<Threshold>() {
            Ok(t) => {
                // A threshold that parsed can be evaluated on any number.
                for actual in [0.0, -1.0, f64::MAX, f64::NAN, f64::INFINITY] {
                    let _ = t.holds(actual);
                }
            }
            Err(e) => prop_assert!(e.contains("expected") || e.contains(&text), "{e}"),
        }
    }

    #[test]
    fn merge_reads_any_interval_log_without_panicking(
        edits in proptest::collection::vec((0usize..4096, any::<u8>()), 1..16),
        cut in 0usize..4096,
    ) {
        let mut bytes = interval_log();
        for (at, byte) in edits {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        bytes.truncate(cut.max(1).min(bytes.len()));
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("latency.hlog");
        std::fs::write(&path, &bytes).expect("write");
        if let Err(e) = loadtest::merge::read_log(&path) {
            prop_assert!(format!("{e:#}").contains("latency.hlog"), "{e:#}");
        }
    }

    #[test]
    fn merge_answers_any_run_json(text in prop_oneof![
        mutated(r#"{"scenario":{"name":"q","seed":1},"operations":[{"operation":"keyvalue.get"}]}"#),
        junk(),
    ]) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("run.json");
        std::fs::write(&path, text).expect("write");
        let result = loadtest::merge::merge(&[path]);
        prop_assert!(result.is_err(), "an edited fragment merged");
    }
}

/// The seed log itself reads back, so the edits above start from a valid log.
#[test]
fn the_seed_interval_log_is_valid() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("latency.hlog");
    std::fs::write(&path, interval_log()).expect("write");
    let tags = loadtest::merge::read_log(&path).expect("valid log");
    assert_eq!(tags.len(), 2, "{:?}", tags.keys().collect::<Vec<_>>());
}

/// The seed scenarios are valid, so edits start from a scenario that passes validation.
#[test]
fn the_seed_scenarios_are_valid() {
    for text in [QUICKSTART, MIXED, PUBSUB] {
        Scenario::parse(text, Path::new("seed.yaml")).expect("a shipped scenario");
    }
}

/// The extreme-number generator writes YAML the parser reads: most of its documents get
/// past the YAML and the types into validation, where the arithmetic is.
#[test]
fn extreme_scenarios_reach_validation() {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut invalid_meaning = 0;
    for _ in 0..300 {
        let text = extreme_scenario().new_tree(&mut runner).expect("tree").current();
        match Scenario::parse(&text, Path::new("x.yaml")) {
            Ok(_) => {}
            Err(e) if !e.to_string().contains("YAML") && !e.to_string().contains("invalid type") => {
                invalid_meaning += 1
            }
            Err(_) => {}
        }
    }
    assert!(
        invalid_meaning > 150,
        "only {invalid_meaning} of 300 reached validation"
    );
}
