//! clickhouse: time series in a MergeTree table with batched inserts; see
//! prism_proxy::backends::clickhouse.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use prism_proxy::backends::clickhouse::ClickhouseConfig;
use prism_proxy::config::BackendConfig;

use super::ServerBackend;
use crate::Capability;
use crate::provision::ServerSpec;
use crate::provision::specs::{answers, strings};

pub const CLICKHOUSE: ServerBackend = ServerBackend {
    spec: &SERVER,
    capabilities: &[Capability::TimeseriesColumns],
    config: |url, prefix| {
        BackendConfig::Clickhouse(ClickhouseConfig {
            prefix: prefix.to_string(),
            ..ClickhouseConfig::new(url)
        })
    },
};

/// ClickHouse over HTTP. The process gets a config written into its data folder (paths
/// there, HTTP only); the port is given on the command line after `--`, which both the
/// Debian 18.16 binary and the official image accept.
pub static SERVER: ServerSpec = ServerSpec {
    backend: "clickhouse",
    binary: "clickhouse-server",
    binary_dirs: &[],
    user: None,
    prepare: Some(clickhouse_config),
    args: |port, dir| {
        let (config, port) = (format!("--config-file={dir}/config.xml"), format!("--http_port={port}"));
        strings(&[&config, "--", &port])
    },
    image: ("clickhouse/clickhouse-server", "24.8"),
    container_env: &[("CLICKHOUSE_SKIP_USER_SETUP", "1")],
    container_port: 8123,
    container_args: |host, port| {
        let (port, listen) = (format!("--http_port={port}"), format!("--listen_host={host}"));
        strings(&["--", &port, &listen])
    },
    url: |addr| format!("http://{addr}"),
    ready: |addr| answers(addr, b"GET /ping HTTP/1.0\r\n\r\n", b"HTTP/1.0 200 OK"),
    version: |url| {
        Box::pin(async move {
            // Without validation: RowBinary, which servers before 24.x (18.16 here) know.
            let client = clickhouse::Client::default().with_url(url).with_validation(false);
            let version: String = client.query("SELECT version()").fetch_one().await?;
            Ok(format!("clickhouse {version}"))
        })
    },
    start_timeout: Duration::from_secs(30),
};

/// A ClickHouse server config serving HTTP with everything under `data_dir`
/// (clickhouse.xml, shared with ci/install-servers.sh's image).
pub fn clickhouse_config_xml(data_dir: &str) -> String {
    include_str!("../provision/clickhouse.xml").replace("DATA_DIR", data_dir)
}

fn clickhouse_config(_: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join("config.xml");
    std::fs::write(&path, clickhouse_config_xml(&data_dir.to_string_lossy()))
        .with_context(|| format!("writing {}", path.display()))
}
