//! Signoz: ZooKeeper and ClickHouse (the store, with the `histogramQuantile` function),
//! the telemetry-store migrator (a one-shot that must exit 0 before anything writes), the
//! OpenTelemetry collector (OTLP on gRPC and HTTP into ClickHouse) and the Signoz UI.
//! Upstream's compose files stopped at v0.129.0 (Foundry generates them since); this
//! definition follows that last one, with the images pinned in [`crate::versions`].

use std::path::PathBuf;
use std::time::Duration;

use super::{FileMount, Port, Ready, Service, Stack, StackFile, Ulimit, VolumeMount, cmd};
use crate::settings::Settings;
use crate::versions;

const CLICKHOUSE_CLUSTER: &str = "signoz/clickhouse-cluster.xml";
const CLICKHOUSE_FUNCTIONS: &str = "signoz/clickhouse-functions.xml";
const CUSTOM_FUNCTION: &str = "signoz/custom-function.xml";
const COLLECTOR_CONFIG: &str = "signoz/otel-collector.yaml";
const OPAMP_CONFIG: &str = "signoz/otel-collector-opamp.yaml";

const COLLECTOR_TARGET: &str = "/etc/otel-collector-config.yaml";
const OPAMP_TARGET: &str = "/etc/manager-config.yaml";
const USER_SCRIPTS: &str = "/var/lib/clickhouse/user_scripts";
const USER_SCRIPTS_VOLUME: &str = "clickhouse-user-scripts";
/// Signoz's OpAMP server (collector pipelines managed from the UI).
const OPAMP_PORT: u16 = 4320;

/// Where ClickHouse finds executable functions and their scripts (upstream sets both in
/// its own `config.xml`; the image's default pattern, `*_function.*ml`, would miss
/// `custom-function.xml`).
const CLICKHOUSE_FUNCTIONS_CONFIG: &str = r#"<?xml version="1.0"?>
<!-- Written by devstack: executable functions, as Signoz's ClickHouse config sets them. -->
<clickhouse>
    <user_defined_executable_functions_config>*function.xml</user_defined_executable_functions_config>
    <user_scripts_path>/var/lib/clickhouse/user_scripts/</user_scripts_path>
</clickhouse>
"#;

/// `histogramQuantile(buckets, counts, quantile)`, which Signoz's metrics queries call.
const HISTOGRAM_QUANTILE_FUNCTION: &str = r#"<?xml version="1.0"?>
<!-- Written by devstack: the function Signoz's percentile queries call. -->
<functions>
    <function>
        <type>executable</type>
        <name>histogramQuantile</name>
        <return_type>Float64</return_type>
        <argument><type>Array(Float64)</type><name>buckets</name></argument>
        <argument><type>Array(Float64)</type><name>counts</name></argument>
        <argument><type>Float64</type><name>quantile</name></argument>
        <format>CSV</format>
        <command>./histogramQuantile</command>
    </function>
</functions>
"#;

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

/// Adds Signoz's services and config files to `stack`, as upstream's last compose file
/// (signoz v0.129.0, `deploy/docker/docker-compose.yaml`) runs them; `devstack/UPSTREAM.md`
/// lists each setting against that file and where ours differs.
pub fn add(stack: &mut Stack, settings: &Settings) {
    let zookeeper = Stack::address(settings.network, "zookeeper");
    let clickhouse = Stack::address(settings.network, "clickhouse");
    let signoz = Stack::address(settings.network, "signoz");
    let dsn = format!("tcp://{clickhouse}:9000");

    stack.files.push(StackFile {
        path: PathBuf::from(CLICKHOUSE_CLUSTER),
        contents: clickhouse_cluster(&zookeeper, &clickhouse),
    });
    stack.files.push(StackFile {
        path: PathBuf::from(CLICKHOUSE_FUNCTIONS),
        contents: CLICKHOUSE_FUNCTIONS_CONFIG.into(),
    });
    stack.files.push(StackFile {
        path: PathBuf::from(CUSTOM_FUNCTION),
        contents: HISTOGRAM_QUANTILE_FUNCTION.into(),
    });
    stack.files.push(StackFile {
        path: PathBuf::from(COLLECTOR_CONFIG),
        contents: collector_config(settings, &dsn),
    });
    stack.files.push(StackFile {
        path: PathBuf::from(OPAMP_CONFIG),
        contents: format!("# Written by devstack: the collector takes pipeline changes from Signoz.\nserver_endpoint: ws://{signoz}:{OPAMP_PORT}/v1/opamp\n"),
    });

    stack.services.extend(store());
    stack.services.extend(telemetry(settings, &dsn));
}

/// The store: ZooKeeper, the one-shot fetching `histogramQuantile`, ClickHouse.
fn store() -> [Service; 3] {
    let mut zk = service("zookeeper", versions::image("zookeeper", versions::ZOOKEEPER));
    zk.user = Some("root".into());
    zk.env = env(&[
        ("ZOO_SERVER_ID", "1"),
        ("ALLOW_ANONYMOUS_LOGIN", "yes"),
        ("ZOO_AUTOPURGE_INTERVAL", "1"),
        ("ZOO_ENABLE_PROMETHEUS_METRICS", "yes"),
        ("ZOO_PROMETHEUS_METRICS_PORT_NUMBER", "9141"),
        // its admin server would take 8080, the UI's port on the host network
        ("ZOO_ADMIN_SERVER_PORT_NUMBER", "8081"),
    ]);
    zk.volumes = vec![volume("zookeeper-data", "/bitnami/zookeeper")];
    zk.ready = Ready::Healthy(strings(&[
        "CMD-SHELL",
        "curl -s -m 2 http://localhost:8081/commands/ruok | grep error | grep null",
    ]));
    zk.timeout = Duration::from_secs(90);

    // The executable behind ClickHouse's `histogramQuantile` (Signoz's latency percentiles),
    // fetched once into a volume ClickHouse mounts, as upstream's `init-clickhouse` does.
    let mut scripts = service("init-clickhouse", versions::image("clickhouse", versions::CLICKHOUSE));
    scripts.entrypoint = Some(strings(&["bash", "-c"]));
    scripts.command = vec![fetch_histogram_quantile()];
    scripts.volumes = vec![volume(USER_SCRIPTS_VOLUME, USER_SCRIPTS)];
    scripts.ready = Ready::Completed;
    scripts.retries = 3;

    let mut ch = service("clickhouse", versions::image("clickhouse", versions::CLICKHOUSE));
    // Without it the 25.x image binds the default user to localhost only.
    ch.env = env(&[("CLICKHOUSE_SKIP_USER_SETUP", "1")]);
    ch.volumes = vec![
        volume("clickhouse-data", "/var/lib/clickhouse"),
        volume(USER_SCRIPTS_VOLUME, USER_SCRIPTS),
    ];
    ch.files = vec![
        FileMount {
            file: PathBuf::from(CLICKHOUSE_CLUSTER),
            target: "/etc/clickhouse-server/config.d/cluster.xml".into(),
        },
        FileMount {
            file: PathBuf::from(CLICKHOUSE_FUNCTIONS),
            target: "/etc/clickhouse-server/config.d/functions.xml".into(),
        },
        FileMount {
            file: PathBuf::from(CUSTOM_FUNCTION),
            target: "/etc/clickhouse-server/custom-function.xml".into(),
        },
    ];
    ch.ulimits = vec![
        Ulimit::new("nproc", 65535, 65535),
        Ulimit::new("nofile", 262144, 262144),
    ];
    ch.depends_on = strings(&["zookeeper", "init-clickhouse"]);
    ch.ready = cmd(&["wget", "--spider", "-q", "0.0.0.0:8123/ping"]);
    [zk, scripts, ch]
}

/// The migrator, the collector and the UI, on ClickHouse at `dsn`.
fn telemetry(settings: &Settings, dsn: &str) -> [Service; 3] {
    // The collector image carries the schema migrations (the separate schema-migrator
    // image is gone upstream); retried because ClickHouse's distributed DDL may still be
    // settling when it first answers.
    let collector_image = versions::image("otel-collector", versions::OTEL_COLLECTOR);
    let mut migrator = service("telemetrystore-migrator", collector_image.clone());
    migrator.entrypoint = Some(strings(&["/bin/sh", "-c"]));
    migrator.command = vec![
        "/signoz-otel-collector migrate bootstrap && /signoz-otel-collector migrate sync up && /signoz-otel-collector migrate async up".into(),
    ];
    migrator.env = collector_env(dsn);
    migrator.depends_on = strings(&["clickhouse"]);
    migrator.ready = Ready::Completed;
    migrator.retries = 5;
    migrator.timeout = Duration::from_secs(600);

    let mut collector = service("otel-collector", collector_image);
    collector.entrypoint = Some(strings(&["/bin/sh", "-c"]));
    // `migrate sync check` first, as upstream: a collector never writes into a schema the
    // migrator has not finished.
    collector.command = vec![format!(
        "/signoz-otel-collector migrate sync check && /signoz-otel-collector --config={COLLECTOR_TARGET} --manager-config={OPAMP_TARGET} --copy-path=/var/tmp/collector-config.yaml"
    )];
    collector.env = collector_env(dsn);
    collector.env.extend(env(&[
        ("OTEL_RESOURCE_ATTRIBUTES", "host.name=prism-devstack,os.type=linux"),
        ("LOW_CARDINAL_EXCEPTION_GROUPING", "false"),
    ]));
    collector.files = vec![
        FileMount {
            file: PathBuf::from(COLLECTOR_CONFIG),
            target: COLLECTOR_TARGET.into(),
        },
        FileMount {
            file: PathBuf::from(OPAMP_CONFIG),
            target: OPAMP_TARGET.into(),
        },
    ];
    collector.ports = vec![Port::same(settings.otlp_grpc_port), Port::same(settings.otlp_http_port)];
    collector.depends_on = strings(&["clickhouse", "telemetrystore-migrator"]);
    // Readiness is its OTLP/HTTP receiver answering (405 for a GET) from the host: what
    // the proxy needs, and reachable without publishing the health_check port.
    collector.ready = Ready::Http {
        port: settings.otlp_http_port,
        path: "/v1/traces".into(),
    };

    let mut ui = service("signoz", versions::image("signoz", versions::SIGNOZ));
    ui.env = vec![
        ("SIGNOZ_ALERTMANAGER_PROVIDER".into(), "signoz".into()),
        ("SIGNOZ_TELEMETRYSTORE_CLICKHOUSE_DSN".into(), dsn.to_string()),
        ("SIGNOZ_SQLSTORE_SQLITE_PATH".into(), "/var/lib/signoz/signoz.db".into()),
        // Signs the UI's login sessions; the UI listens on 127.0.0.1 only.
        ("SIGNOZ_TOKENIZER_JWT_SECRET".into(), "prism-devstack-local".into()),
        ("SIGNOZ_ANALYTICS_ENABLED".into(), "false".into()),
    ];
    ui.volumes = vec![volume("signoz-data", "/var/lib/signoz")];
    ui.ports = vec![Port {
        container: SIGNOZ_HTTP,
        host: settings.ui_port,
    }];
    ui.depends_on = strings(&["clickhouse", "telemetrystore-migrator"]);
    ui.ready = cmd(&["wget", "--spider", "-q", "localhost:8080/api/v1/health"]);
    [migrator, collector, ui]
}

/// The environment the collector binary reads its ClickHouse settings from, for the
/// collector and the migrator alike (flags `--clickhouse-*`, prefix `SIGNOZ_OTEL_COLLECTOR_`).
fn collector_env(dsn: &str) -> Vec<(String, String)> {
    env(&[
        ("SIGNOZ_OTEL_COLLECTOR_CLICKHOUSE_DSN", dsn),
        ("SIGNOZ_OTEL_COLLECTOR_CLICKHOUSE_CLUSTER", "cluster"),
        ("SIGNOZ_OTEL_COLLECTOR_CLICKHOUSE_REPLICATION", "true"),
        ("SIGNOZ_OTEL_COLLECTOR_TIMEOUT", "10m"),
    ])
}

/// The shell command of `init-clickhouse`: upstream's release asset for this machine's
/// OS and CPU, skipped when a previous `up` already fetched it.
fn fetch_histogram_quantile() -> String {
    format!(
        r#"set -e
target={USER_SCRIPTS}/histogramQuantile
if [ -x "$target" ]; then echo "histogramQuantile already present"; exit 0; fi
os=$(uname -s | tr '[:upper:]' '[:lower:]')
arch=$(uname -m | sed s/aarch64/arm64/ | sed s/x86_64/amd64/)
cd /tmp
wget -O histogram-quantile.tar.gz "https://github.com/SigNoz/signoz/releases/download/histogram-quantile%2F{version}/histogram-quantile_${{os}}_${{arch}}.tar.gz"
tar -xzf histogram-quantile.tar.gz
mv histogram-quantile "$target""#,
        version = versions::HISTOGRAM_QUANTILE,
    )
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

/// The collector: OTLP in on both protocols; traces, metrics and logs into Signoz's
/// ClickHouse tables with the span metrics, metadata and usage meter Signoz's UI reads
/// (the pipelines of upstream's `otel-collector-config.yaml` at v0.129.0).
fn collector_config(settings: &Settings, dsn: &str) -> String {
    format!(
        r#"# Written by devstack: OTLP in (gRPC {grpc}, HTTP {http}), Signoz's ClickHouse out.
connectors:
  signozmeter:
    metrics_flush_interval: 1h
    dimensions:
      - name: service.name
      - name: deployment.environment
      - name: host.name
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:{grpc}
      http:
        endpoint: 0.0.0.0:{http}
processors:
  # 1 s rather than upstream's 10 s: a developer's spans show up at once.
  batch:
    send_batch_size: 10000
    send_batch_max_size: 11000
    timeout: 1s
  batch/meter:
    send_batch_max_size: 25000
    send_batch_size: 20000
    timeout: 1s
  resourcedetection:
    detectors: [env, system]
    timeout: 2s
  signozspanmetrics/delta:
    metrics_exporter: signozclickhousemetrics
    metrics_flush_interval: 60s
    latency_histogram_buckets: [100us, 1ms, 2ms, 6ms, 10ms, 50ms, 100ms, 250ms, 500ms, 1000ms, 1400ms, 2000ms, 5s, 10s, 20s, 40s, 60s]
    dimensions_cache_size: 100000
    aggregation_temporality: AGGREGATION_TEMPORALITY_DELTA
    enable_exp_histogram: true
    dimensions:
      - name: service.namespace
        default: default
      - name: deployment.environment
        default: default
      - name: signoz.collector.id
      - name: service.version
      - name: host.name
      - name: container.name
extensions:
  health_check:
    endpoint: 0.0.0.0:13133
exporters:
  clickhousetraces:
    datasource: {dsn}/signoz_traces
    low_cardinal_exception_grouping: ${{env:LOW_CARDINAL_EXCEPTION_GROUPING}}
    use_new_schema: true
  signozclickhousemetrics:
    dsn: {dsn}/signoz_metrics
  clickhouselogsexporter:
    dsn: {dsn}/signoz_logs
    timeout: 10s
    use_new_schema: true
  signozclickhousemeter:
    dsn: {dsn}/signoz_meter
    timeout: 45s
    sending_queue:
      enabled: false
  metadataexporter:
    cache:
      provider: in_memory
    dsn: {dsn}/signoz_metadata
    enabled: true
    timeout: 45s
service:
  telemetry:
    logs:
      encoding: json
  extensions: [health_check]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [signozspanmetrics/delta, batch]
      exporters: [clickhousetraces, metadataexporter, signozmeter]
    metrics:
      receivers: [otlp]
      processors: [batch]
      exporters: [signozclickhousemetrics, metadataexporter, signozmeter]
    logs:
      receivers: [otlp]
      processors: [batch]
      exporters: [clickhouselogsexporter, metadataexporter, signozmeter]
    metrics/meter:
      receivers: [signozmeter]
      processors: [batch/meter]
      exporters: [signozclickhousemeter]
"#,
        grpc = settings.otlp_grpc_port,
        http = settings.otlp_http_port,
    )
}
