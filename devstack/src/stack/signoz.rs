//! Signoz: ZooKeeper and ClickHouse (the store), the schema migrators (one-shots that must
//! exit 0 before anything writes), the OpenTelemetry collector (OTLP on gRPC and HTTP into
//! ClickHouse) and the Signoz UI. Signoz no longer ships a compose file upstream, so this
//! definition is ours; the images are pinned in [`crate::versions`].

use std::path::PathBuf;
use std::time::Duration;

use super::{FileMount, Port, Ready, Service, Stack, StackFile, VolumeMount, cmd};
use crate::settings::Settings;
use crate::versions;

const CLICKHOUSE_CLUSTER: &str = "signoz/clickhouse-cluster.xml";
const COLLECTOR_CONFIG: &str = "signoz/otel-collector.yaml";
const PROMETHEUS_CONFIG: &str = "signoz/prometheus.yml";

/// The UI's port inside its container.
const SIGNOZ_HTTP: u16 = 8080;

fn service(name: &str, image: String) -> Service {
    Service::new(name, "signoz", image)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Adds Signoz's services and config files to `stack`.
pub fn add(stack: &mut Stack, settings: &Settings) {
    let zookeeper = Stack::address(settings.network, "zookeeper");
    let clickhouse = Stack::address(settings.network, "clickhouse");
    let dsn = format!("tcp://{clickhouse}:9000");

    stack.files.push(StackFile {
        path: PathBuf::from(CLICKHOUSE_CLUSTER),
        contents: clickhouse_cluster(&zookeeper, &clickhouse),
    });
    stack.files.push(StackFile {
        path: PathBuf::from(COLLECTOR_CONFIG),
        contents: collector_config(settings, &dsn),
    });
    stack.files.push(StackFile {
        path: PathBuf::from(PROMETHEUS_CONFIG),
        contents: "# Signoz's rule evaluation config; no scrape targets in the devstack.\nglobal:\n  scrape_interval: 60s\nscrape_configs: []\n".into(),
    });

    let mut zk = service("zookeeper", versions::image("zookeeper", versions::ZOOKEEPER));
    zk.user = Some("root".into());
    zk.env = env(&[
        ("ZOO_SERVER_ID", "1"),
        ("ALLOW_ANONYMOUS_LOGIN", "yes"),
        ("ZOO_AUTOPURGE_INTERVAL", "1"),
        // its admin server would take 8080, the UI's port on the host network
        ("ZOO_ADMIN_SERVER_PORT_NUMBER", "8081"),
    ]);
    zk.volumes = vec![volume("zookeeper-data", "/bitnami/zookeeper")];
    zk.ready = Ready::Healthy(strings(&[
        "CMD-SHELL",
        "curl -s -m 2 http://localhost:8081/commands/ruok | grep -q '\"error\" : null'",
    ]));
    zk.timeout = Duration::from_secs(90);

    let mut ch = service("clickhouse", versions::image("clickhouse", versions::CLICKHOUSE));
    ch.volumes = vec![volume("clickhouse-data", "/var/lib/clickhouse")];
    ch.files = vec![FileMount {
        file: PathBuf::from(CLICKHOUSE_CLUSTER),
        target: "/etc/clickhouse-server/config.d/cluster.xml".into(),
    }];
    ch.depends_on = strings(&["zookeeper"]);
    ch.ready = cmd(&["wget", "--spider", "-q", "http://127.0.0.1:8123/ping"]);

    let migrator = |name: &str, mode: &str| {
        let mut m = service(name, versions::image("schema-migrator", versions::SCHEMA_MIGRATOR));
        m.command = vec![mode.to_string(), format!("--dsn={dsn}"), "--up=".into()];
        m.ready = Ready::Completed;
        m.timeout = Duration::from_secs(300);
        m
    };
    let mut sync = migrator("schema-migrator-sync", "sync");
    sync.depends_on = strings(&["clickhouse"]);
    let mut migrate_async = migrator("schema-migrator-async", "async");
    migrate_async.depends_on = strings(&["schema-migrator-sync"]);

    let mut collector = service(
        "otel-collector",
        versions::image("otel-collector", versions::OTEL_COLLECTOR),
    );
    collector.command = strings(&[
        "--config=/etc/otel-collector-config.yaml",
        "--feature-gates=-pkg.translator.prometheus.NormalizeName",
    ]);
    collector.env = env(&[("OTEL_RESOURCE_ATTRIBUTES", "host.name=prism-devstack,os.type=linux")]);
    collector.files = vec![FileMount {
        file: PathBuf::from(COLLECTOR_CONFIG),
        target: "/etc/otel-collector-config.yaml".into(),
    }];
    collector.ports = vec![Port::same(settings.otlp_grpc_port), Port::same(settings.otlp_http_port)];
    collector.depends_on = strings(&["clickhouse", "schema-migrator-async"]);
    // The collector image has no shell or wget: readiness is its OTLP/HTTP receiver
    // answering (405 for a GET).
    collector.ready = Ready::Http {
        port: settings.otlp_http_port,
        path: "/v1/traces".into(),
    };

    let mut ui = service("signoz", versions::image("signoz", versions::SIGNOZ));
    ui.command = strings(&["--config=/root/config/prometheus.yml"]);
    ui.env = vec![
        ("SIGNOZ_TELEMETRYSTORE_CLICKHOUSE_DSN".into(), dsn.clone()),
        ("SIGNOZ_SQLSTORE_SQLITE_PATH".into(), "/var/lib/signoz/signoz.db".into()),
        ("SIGNOZ_ALERTMANAGER_PROVIDER".into(), "signoz".into()),
        ("STORAGE".into(), "clickhouse".into()),
        ("TELEMETRY_ENABLED".into(), "false".into()),
    ];
    ui.volumes = vec![volume("signoz-data", "/var/lib/signoz")];
    ui.files = vec![FileMount {
        file: PathBuf::from(PROMETHEUS_CONFIG),
        target: "/root/config/prometheus.yml".into(),
    }];
    ui.ports = vec![Port {
        container: SIGNOZ_HTTP,
        host: settings.ui_port,
    }];
    ui.depends_on = strings(&["clickhouse", "schema-migrator-async"]);
    ui.ready = cmd(&["wget", "--spider", "-q", "http://127.0.0.1:8080/api/v1/health"]);

    stack.services.extend([zk, ch, sync, migrate_async, collector, ui]);
}

fn volume(name: &str, target: &str) -> VolumeMount {
    VolumeMount {
        volume: name.into(),
        target: target.into(),
    }
}

/// ClickHouse: the one-node cluster `cluster` Signoz's tables are created on, and the
/// ZooKeeper its distributed DDL goes through.
fn clickhouse_cluster(zookeeper: &str, clickhouse: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<!-- Written by devstack: the one-node cluster Signoz creates its tables on. -->
<clickhouse>
    <zookeeper>
        <node index="1"><host>{zookeeper}</host><port>2181</port></node>
    </zookeeper>
    <remote_servers>
        <cluster>
            <shard><replica><host>{clickhouse}</host><port>9000</port></replica></shard>
        </cluster>
    </remote_servers>
    <macros><shard>01</shard><replica>01</replica></macros>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
</clickhouse>
"#
    )
}

/// The collector: OTLP in on both protocols, batched into Signoz's ClickHouse tables.
fn collector_config(settings: &Settings, dsn: &str) -> String {
    format!(
        r#"# Written by devstack: OTLP in (gRPC {grpc}, HTTP {http}), Signoz's ClickHouse out.
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:{grpc}
      http:
        endpoint: 0.0.0.0:{http}
processors:
  batch:
    send_batch_size: 10000
    timeout: 1s
exporters:
  clickhousetraces:
    datasource: {dsn}/signoz_traces
    use_new_schema: true
  signozclickhousemetrics:
    dsn: {dsn}/signoz_metrics
  clickhouselogsexporter:
    dsn: {dsn}/signoz_logs
    use_new_schema: true
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [clickhousetraces]
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [signozclickhousemetrics]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [clickhouselogsexporter]
"#,
        grpc = settings.otlp_grpc_port,
        http = settings.otlp_http_port,
    )
}
