//! The stack definition: dependency order, cycles and unknown names refused, `--only`
//! taking what a part depends on, host ports not used twice, one issuer everywhere.

// Helpers here panic on failure as the tests that call them do.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use devstack::identity::Identity;
use devstack::stack::{self, StackError};
use devstack::{NetworkMode, Settings};

fn ours(network: NetworkMode) -> stack::Stack {
    let settings = Settings::with_defaults("devstack", network, PathBuf::from("/nonexistent"));
    let identity = Identity::generate().unwrap();
    stack::devstack(&settings, &identity)
}

fn names(services: &[&stack::Service]) -> Vec<String> {
    services.iter().map(|s| s.name.clone()).collect()
}

#[test]
fn services_start_after_what_they_depend_on() {
    let stack = ours(NetworkMode::Bridge);
    let order = names(&stack.ordered().unwrap());
    let at = |n: &str| order.iter().position(|s| s == n).unwrap();
    assert!(at("zookeeper") < at("clickhouse"));
    assert!(at("init-clickhouse") < at("clickhouse"));
    assert!(at("clickhouse") < at("telemetrystore-migrator"));
    assert!(at("telemetrystore-migrator") < at("otel-collector"));
    assert!(at("telemetrystore-migrator") < at("signoz"));
}

#[test]
fn only_takes_a_part_with_its_dependencies() {
    let stack = ours(NetworkMode::Bridge);
    let dex = stack.only(&["dex".into()]).unwrap();
    assert_eq!(names(&dex.ordered().unwrap()), ["dex"]);
    let collector = stack.only(&["otel-collector".into()]).unwrap();
    assert_eq!(
        names(&collector.ordered().unwrap()),
        [
            "zookeeper",
            "init-clickhouse",
            "clickhouse",
            "telemetrystore-migrator",
            "otel-collector"
        ]
    );
    assert_eq!(stack.only(&["signoz".into()]).unwrap().services.len(), 6);
    let err = stack.only(&["grafana".into()]).unwrap_err();
    assert!(
        matches!(&err, StackError::UnknownName(n, known) if n == "grafana" && known.contains("dex")),
        "{err}"
    );
}

#[test]
fn broken_definitions_are_refused_with_names() {
    let mut stack = ours(NetworkMode::Bridge);
    stack.services[0].depends_on.push("nowhere".into());
    assert_eq!(
        stack.ordered().unwrap_err(),
        StackError::UnknownDependency {
            service: "dex".into(),
            missing: "nowhere".into()
        }
    );

    let mut stack = ours(NetworkMode::Bridge);
    let zk = stack.services.iter().position(|s| s.name == "zookeeper").unwrap();
    stack.services[zk].depends_on.push("clickhouse".into());
    assert!(matches!(stack.ordered().unwrap_err(), StackError::Cycle(s) if s.contains("zookeeper")));

    // On the host's network the UI listens on 8080 itself; moving Dex there clashes.
    let mut stack = ours(NetworkMode::Host);
    stack.services[0].ports[0].container = 8080;
    assert!(matches!(
        stack.ordered().unwrap_err(),
        StackError::PortClash(_, _, 8080)
    ));
}

#[test]
fn the_issuer_and_addresses_follow_the_settings() {
    let settings = Settings::with_defaults("devstack", NetworkMode::Host, PathBuf::from("/x"));
    let moved = Settings {
        dex_port: 6556,
        ..settings
    };
    assert_eq!(moved.issuer(), "http://127.0.0.1:6556/dex");
    let identity = Identity::generate().unwrap();
    let stack = stack::devstack(&moved, &identity);
    let dex = stack
        .files
        .iter()
        .find(|f| f.path.ends_with("dex/config.yaml"))
        .unwrap();
    assert!(dex.contents.contains("issuer: http://127.0.0.1:6556/dex"));
    assert!(dex.contents.contains("http: 0.0.0.0:6556"));
    // On the host's network services reach each other on loopback; on a bridge by name.
    let host_ch = stack
        .files
        .iter()
        .find(|f| f.path.ends_with("clickhouse-cluster.xml"))
        .unwrap();
    assert!(host_ch.contents.contains("<host>127.0.0.1</host>"));
    let bridge = ours(NetworkMode::Bridge);
    let bridge_ch = bridge
        .files
        .iter()
        .find(|f| f.path.ends_with("clickhouse-cluster.xml"))
        .unwrap();
    assert!(bridge_ch.contents.contains("<host>zookeeper</host>"));
}

/// `proxy.yaml` for every backend parses as the proxy's own config, naming each
/// backend's URL and port, with OIDC against the stack's Dex and OTLP into its collector.
#[test]
fn the_proxy_config_parses_with_a_namespace_per_backend() {
    use devstack::stack::backends::{self, Backend};
    let with: Vec<Backend> = ["redis", "postgres:5433", "nats", "clickhouse"]
        .iter()
        .map(|b| Backend::parse(b).unwrap())
        .collect();
    let settings = Settings {
        backends: with.clone(),
        ..Settings::with_defaults("devstack", NetworkMode::Bridge, PathBuf::from("/nonexistent"))
    };
    let identity = Identity::generate().unwrap();
    let stack = stack::devstack(&settings, &identity);
    for b in &with {
        assert!(stack.service(&b.kind.service()).is_some(), "{b:?}");
    }
    stack.ordered().expect("no port used twice");
    let text = backends::proxy_config(&stack, &settings);
    let config = prism_proxy::config::Config::parse(&text, std::path::Path::new("proxy.yaml"))
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let names: Vec<&str> = config.namespaces.keys().map(String::as_str).collect();
    assert_eq!(names, ["admin", "clickhouse", "default", "nats", "postgres", "redis"]);
    assert!(text.contains("postgres://postgres@127.0.0.1:5433/postgres"), "{text}");
    assert!(text.contains("http://127.0.0.1:8124"), "{text}");
    let prism_proxy::config::AuthMode::Oidc(oidc) = &config.auth else {
        panic!("oidc")
    };
    assert_eq!(oidc.issuer, settings.issuer());
    let otlp = config.telemetry.otlp.expect("otlp");
    assert_eq!(
        (otlp.endpoint.as_str(), otlp.protocol.as_str()),
        ("http://127.0.0.1:4317", "grpc")
    );
    assert_eq!(
        config.namespaces["admin"].groups.as_deref(),
        Some(&["prism:admin".to_string()][..])
    );

    // Only Dex (`up --only dex --with redis`): no collector, so no export.
    let dex_only = stack.only(&["dex".into(), "backends".into()]).unwrap();
    let text = backends::proxy_config(&dex_only, &settings);
    assert!(!text.contains("telemetry"), "{text}");

    for bad in ["mysql", "redis:0", "redis:http", "nats:70000"] {
        let err = Backend::parse(bad).unwrap_err();
        assert!(err.contains(bad.split(':').next_back().unwrap()), "{bad}: {err}");
    }
}
