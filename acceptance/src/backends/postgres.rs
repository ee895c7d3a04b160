//! postgres: one table per interface, SKIP LOCKED and LISTEN/NOTIFY; see
//! prism_proxy::backends::postgres.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use prism_proxy::backends::postgres::PostgresConfig;
use prism_proxy::config::BackendConfig;

use super::ServerBackend;
use crate::Capability;
use crate::provision::ServerSpec;
use crate::provision::specs::strings;

pub const POSTGRES: ServerBackend = ServerBackend {
    spec: &SERVER,
    capabilities: &[Capability::QueueDeliveryCount, Capability::TtlRemaining],
    config: |url, prefix| {
        BackendConfig::Postgres(PostgresConfig {
            url: url.to_string(),
            prefix: prefix.to_string(),
            timeout: std::time::Duration::from_secs(5),
            pool_size: 8,
        })
    },
};

/// PostgreSQL: Debian keeps the binaries off PATH and the server refuses root, so the
/// process runs as `postgres` after an `initdb`. Ready when a query succeeds.
pub static SERVER: ServerSpec = ServerSpec {
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
    version: |url| {
        Box::pin(async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            let row = client.query_one("SELECT version()", &[]).await?;
            Ok(row.try_get::<_, String>(0)?)
        })
    },
    start_timeout: Duration::from_secs(60),
};

fn initdb(bin_dir: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let status = crate::provision::process::command(&bin_dir.join("initdb"), Some("postgres"))?
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
