//! Fuzz harnesses (proptest, on stable): the config parser with its validation, token
//! validation against a live (in-test) issuer, and aggregate computation. Inputs are the
//! shipped example configs with random edits, junk, hostile tokens (edited, re-signed
//! with extreme claims) and extreme numbers. Each must answer every input with a value
//! or a typed error, never a panic. `ci/fuzz.sh` runs them with many more cases; the
//! hours run and what they found are in `reports/baseline/fuzz.md`.

use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use fuzz_input::{junk, mutated};
use oidc_test_issuer::{SigningKey, TestIssuer};
use prism_proxy::BackendError;
use prism_proxy::auth::{OidcConfig, OidcValidator};
use prism_proxy::config::Config;
use prism_proxy::interfaces::{AggregateFunction, Aggregation, Event};
use proptest::prelude::*;
use serde_json::{Value, json};

const MEMSTORE: &str = include_str!("../config/memstore.yaml");
const REDIS: &str = include_str!("../config/redis.yaml");
const CLICKHOUSE: &str = include_str!("../config/clickhouse.yaml");

proptest! {
    #[test]
    fn the_config_parser_answers_every_edit_of_a_shipped_config(
        text in prop_oneof![mutated(MEMSTORE), mutated(REDIS), mutated(CLICKHOUSE), junk()]
    ) {
        if let Err(e) = Config::parse(&text, Path::new("fuzz.yaml")) {
            let message = e.to_string();
            prop_assert!(message.contains("fuzz.yaml"), "error without the file name: {message}");
        }
    }
}

/// One issuer, validator and runtime for every case: the validator caches the issuer's
/// keys as it would in the proxy.
struct Auth {
    runtime: tokio::runtime::Runtime,
    issuer: TestIssuer,
    validator: OidcValidator,
    key: SigningKey,
}

fn auth() -> &'static Auth {
    static AUTH: OnceLock<Auth> = OnceLock::new();
    AUTH.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let issuer = runtime.block_on(TestIssuer::start(Vec::new(), Vec::new()));
        let validator = OidcValidator::new(OidcConfig {
            issuer: issuer.url().to_string(),
            audience: "prism-proxy".into(),
            groups_claim: "groups".into(),
            leeway: Duration::from_secs(30),
        })
        .expect("validator");
        let key = issuer.key();
        Auth {
            runtime,
            issuer,
            validator,
            key,
        }
    })
}

/// Claims with one field set to an extreme or ill-typed value.
fn hostile_claims() -> impl Strategy<Value = Value> {
    let field = proptest::sample::select(vec!["exp", "nbf", "iat", "aud", "iss", "groups", "sub"]);
    let value = prop_oneof![
        Just(json!(i64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!(u64::MAX)),
        Just(json!(1e308)),
        Just(json!(-1.5)),
        Just(json!(null)),
        Just(json!([])),
        Just(json!(["prism-proxy", 7, null])),
        Just(json!({"nested": [1, 2]})),
        Just(json!("")),
        "\\PC{0,40}".prop_map(Value::from),
        proptest::collection::vec("\\PC{0,10}", 0..50).prop_map(Value::from),
    ];
    (field, value).prop_map(|(field, value)| {
        let auth = auth();
        let mut claims = auth.issuer.claims("prism-proxy", &["dev"]);
        claims[field] = value;
        claims
    })
}

proptest! {
    #[test]
    fn token_validation_answers_every_token_with_a_caller_or_unauthenticated(
        token in prop_oneof![
            hostile_claims().prop_map(|claims| auth().key.sign(&claims)),
            Just(()).prop_flat_map(|()| {
                let valid: &'static str = Box::leak(auth().key.sign(&auth().issuer.claims("prism-proxy", &[])).into_boxed_str());
                mutated(valid)
            }),
            junk(),
        ]
    ) {
        let auth = auth();
        let result = auth.runtime.block_on(auth.validator.validate(&token));
        match result {
            Ok(_) | Err(BackendError::Unauthenticated(_)) => {}
            Err(other) => prop_assert!(false, "{other:?} for {token:?}"),
        }
    }
}

fn function() -> impl Strategy<Value = AggregateFunction> {
    proptest::sample::select(AggregateFunction::ALL.to_vec())
}

fn extreme_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MIN + 1),
        Just(i64::MAX),
        Just(0),
        Just(-1),
        any::<i64>()
    ]
}

fn extreme_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(-0.0),
        any::<f64>()
    ]
}

proptest! {
    #[test]
    fn aggregation_validates_or_computes_rows_inside_its_range(
        start_ms in extreme_i64(),
        end_ms in extreme_i64(),
        bucket_ms in prop_oneof![Just(0u64), Just(1), Just(u64::MAX), Just(i64::MAX as u64), any::<u64>()],
        function in function(),
        events in proptest::collection::vec((extreme_i64(), extreme_f64(), 0u8..3), 0..40),
    ) {
        let aggregation = Aggregation {
            start_ms,
            end_ms,
            filters: Default::default(),
            bucket_ms,
            metric: "v".into(),
            function,
            group_by: vec!["host".into()],
        };
        let events: Vec<Event> = events
            .into_iter()
            .map(|(timestamp_ms, v, host)| Event {
                timestamp_ms,
                tags: [("host".to_string(), format!("h{host}"))].into(),
                fields: [("v".to_string(), v)].into(),
            })
            .collect();
        if aggregation.validate().is_err() {
            return Ok(());
        }
        let rows = aggregation.compute(&events);
        let in_range = events.iter().filter(|e| aggregation.matches(e)).count() as u64;
        prop_assert_eq!(rows.iter().map(|r| r.count).sum::<u64>(), in_range);
        for row in &rows {
            // A bucket starts at or before the range's events it holds, within one width.
            prop_assert!(row.bucket_start_ms <= end_ms, "{row:?}");
            prop_assert!(
                events.iter().any(|e| aggregation.matches(e) && aggregation.bucket_of(e.timestamp_ms) == row.bucket_start_ms),
                "{row:?} holds no event"
            );
        }
    }
}
