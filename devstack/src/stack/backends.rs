//! The data servers a developer's proxy talks to (`up --with redis,postgres,nats,clickhouse`,
//! RFC-016's full-stack pattern), and the proxy config that wires a proxy to the whole
//! stack: one namespace per backend, `auth: oidc` against the stack's Dex, spans into its
//! collector. Each backend listens on one port of its own (flags set it), so the same
//! definition works on a bridge network and on the host's.

use std::path::PathBuf;
use std::time::Duration;

use super::{FileMount, Port, Ready, Service, Stack, StackFile, Ulimit, VolumeMount};
use crate::settings::{PROXY_CLIENT_ID, Settings};
use crate::versions;

/// `proxy.yaml` in the stack's files: `prism-proxy --config <it>`.
pub const PROXY_CONFIG: &str = "proxy.yaml";
const CLICKHOUSE_PORTS: &str = "backends/clickhouse-ports.xml";

/// A kind of data server the proxy has a driver for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    Redis,
    Postgres,
    Nats,
    Clickhouse,
}

impl BackendKind {
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Redis,
        BackendKind::Postgres,
        BackendKind::Nats,
        BackendKind::Clickhouse,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Redis => "redis",
            BackendKind::Postgres => "postgres",
            BackendKind::Nats => "nats",
            BackendKind::Clickhouse => "clickhouse",
        }
    }

    /// Its usual port; ClickHouse's HTTP port is 8124, as Signoz's own ClickHouse has 8123
    /// on the host network.
    pub fn default_port(self) -> u16 {
        match self {
            BackendKind::Redis => 6379,
            BackendKind::Postgres => 5432,
            BackendKind::Nats => 4222,
            BackendKind::Clickhouse => 8124,
        }
    }

    /// The service (and part) name, distinct from Signoz's `clickhouse`.
    pub fn service(self) -> String {
        format!("backend-{}", self.name())
    }
}

/// One backend to start, and the host port it listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Backend {
    pub kind: BackendKind,
    pub port: u16,
}

impl Backend {
    /// `redis` or `redis:6380`.
    pub fn parse(text: &str) -> Result<Backend, String> {
        let (name, port) = match text.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (text, None),
        };
        let known = || BackendKind::ALL.map(|k| k.name()).join(", ");
        let kind = BackendKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| format!("no backend {name:?} (known: {})", known()))?;
        let port = match port {
            None => kind.default_port(),
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("{p:?} in {text:?} is not a port (1-65535)"))?,
        };
        Ok(Backend { kind, port })
    }

    /// Its URL as the proxy's config (and `devstack env`) gives it.
    pub fn url(&self) -> String {
        let port = self.port;
        match self.kind {
            BackendKind::Redis => format!("redis://127.0.0.1:{port}"),
            BackendKind::Postgres => format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            BackendKind::Nats => format!("nats://127.0.0.1:{port}"),
            BackendKind::Clickhouse => format!("http://127.0.0.1:{port}"),
        }
    }

    /// The variable `devstack env` exports the URL as (`PRISM_DEVSTACK_REDIS_URL`).
    pub fn env_var(&self) -> String {
        format!("PRISM_DEVSTACK_{}_URL", self.kind.name().to_uppercase())
    }
}

fn volume(name: &str, target: &str) -> VolumeMount {
    VolumeMount {
        volume: name.into(),
        target: target.into(),
    }
}

fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Adds the backends' services (part `backends`) and files to `stack`. Commands are flags
/// only: the official images' entrypoints start the server for arguments beginning with
/// `-`, and the local images of CI have the server binary as their entrypoint.
pub fn add(stack: &mut Stack, backends: &[Backend]) {
    for backend in backends {
        let name = backend.kind.service();
        let port = backend.port.to_string();
        let mut s = Service::new(&name, "backends", String::new());
        s.ports = vec![Port::same(backend.port)];
        s.timeout = Duration::from_secs(60);
        match backend.kind {
            BackendKind::Redis => {
                s.image = versions::image(&name, versions::REDIS);
                s.command = args(&["--port", &port, "--dir", "/data", "--appendonly", "yes"]);
                s.volumes = vec![volume("redis-data", "/data")];
                s.ready = Ready::Tcp {
                    port: backend.port,
                    send: b"PING\r\n".to_vec(),
                    expect: b"+PONG".to_vec(),
                };
            }
            BackendKind::Postgres => {
                s.image = versions::image(&name, versions::POSTGRES);
                s.command = args(&["-p", &port]);
                // The port is on 127.0.0.1 only (or the host network of a CI machine).
                s.env = vec![("POSTGRES_HOST_AUTH_METHOD".into(), "trust".into())];
                s.volumes = vec![volume("postgres-data", "/var/lib/postgresql/data")];
                // An SSLRequest; a server without TLS answers `N`.
                s.ready = Ready::Tcp {
                    port: backend.port,
                    send: vec![0, 0, 0, 8, 4, 210, 22, 47],
                    expect: b"N".to_vec(),
                };
            }
            BackendKind::Nats => {
                s.image = versions::image(&name, versions::NATS);
                s.command = args(&["-js", "-sd", "/data", "-p", &port]);
                s.volumes = vec![volume("nats-data", "/data")];
                s.ready = Ready::Tcp {
                    port: backend.port,
                    send: Vec::new(),
                    expect: b"INFO ".to_vec(),
                };
            }
            BackendKind::Clickhouse => {
                s.image = versions::image(&name, versions::CLICKHOUSE);
                s.env = vec![("CLICKHOUSE_SKIP_USER_SETUP".into(), "1".into())];
                s.volumes = vec![volume("clickhouse-backend-data", "/var/lib/clickhouse")];
                stack.files.push(StackFile {
                    path: PathBuf::from(CLICKHOUSE_PORTS),
                    contents: clickhouse_ports(backend.port),
                });
                s.files = vec![FileMount {
                    file: PathBuf::from(CLICKHOUSE_PORTS),
                    target: "/etc/clickhouse-server/config.d/ports.xml".into(),
                }];
                s.ulimits = vec![Ulimit::new("nofile", 262144, 262144)];
                s.ready = Ready::Http {
                    port: backend.port,
                    path: "/ping".into(),
                };
            }
        }
        stack.services.push(s);
    }
}

/// HTTP on `port` and no other listener, so it never meets Signoz's ClickHouse.
fn clickhouse_ports(port: u16) -> String {
    format!(
        r#"<?xml version="1.0"?>
<!-- Written by devstack: the backend ClickHouse answers HTTP on {port} only. -->
<clickhouse>
    <http_port>{port}</http_port>
    <tcp_port remove="1"/>
    <interserver_http_port remove="1"/>
    <mysql_port remove="1"/>
    <postgresql_port remove="1"/>
</clickhouse>
"#
    )
}

/// The proxy's config for what `stack` runs: a memstore `default` namespace and one per
/// backend of `settings`; OIDC against the stack's Dex and spans into its collector when those are in
/// it. Namespace `admin` (memstore) takes only group `prism:admin`, to try group checks.
pub fn proxy_config(stack: &Stack, settings: &Settings) -> String {
    let mut out = String::from(
        "# Written by devstack: a proxy wired to this stack.\n#   prism-proxy --config <this file>\nlisten: 127.0.0.1:50051\nadmin_listen: 127.0.0.1:9090\n",
    );
    if stack.service("dex").is_some() {
        out += &format!(
            "auth:\n  oidc:\n    issuer: {}\n    audience: {PROXY_CLIENT_ID}\n",
            settings.issuer()
        );
    } else {
        out += "auth: none\n";
    }
    if stack.service("otel-collector").is_some() {
        out += &format!(
            "telemetry:\n  otlp:\n    endpoint: {}\n    protocol: grpc\n",
            settings.otlp_grpc_endpoint()
        );
    }
    out += "namespaces:\n  default:\n    backend: { type: memstore }\n";
    if stack.service("dex").is_some() {
        out += &format!(
            "  admin:\n    backend: {{ type: memstore }}\n    groups: [\"{}\"]\n",
            crate::settings::ADMIN_GROUP
        );
    }
    for backend in &settings.backends {
        let url = backend.url();
        out += &match backend.kind {
            BackendKind::Redis => {
                format!("  redis:\n    backend: {{ type: redis, url: \"{url}\", prefix: \"prism:\" }}\n")
            }
            BackendKind::Postgres => {
                format!("  postgres:\n    backend: {{ type: postgres, url: \"{url}\", prefix: \"prism:\" }}\n")
            }
            BackendKind::Nats => format!("  nats:\n    backend: {{ type: nats, url: \"{url}\", prefix: prism }}\n"),
            BackendKind::Clickhouse => {
                format!("  clickhouse:\n    backend: {{ type: clickhouse, url: \"{url}\", database: default }}\n")
            }
        };
    }
    out
}

/// Adds `proxy.yaml` for `stack` as it is now (after `--only`): call last.
pub fn add_proxy_config(stack: &mut Stack, settings: &Settings) {
    let contents = proxy_config(stack, settings);
    stack.files.push(StackFile {
        path: PathBuf::from(PROXY_CONFIG),
        contents,
    });
}
