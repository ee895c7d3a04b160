//! The proxy's YAML configuration.
//!
//! ```yaml
//! listen: 127.0.0.1:50051        # gRPC
//! admin_listen: 127.0.0.1:9090   # /healthz, /readyz, /metrics
//! drain_timeout: 10s
//! auth: none
//! namespaces:
//!   default:
//!     backend: { type: memstore }
//!     interfaces: [keyvalue_basic, keyvalue_scan]   # optional; default: all the backend has
//!     limits: { max_value_bytes: 65536 }            # optional; see `Limits`
//! ```
//!
//! Unknown keys are errors. Every error names the file, and the line and column or the
//! field at fault.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::Interface;
use crate::backends::Backend;
use crate::backends::clickhouse::{Clickhouse, ClickhouseConfig};
use crate::backends::memstore::MemStore;
use crate::backends::nats::{Nats, NatsConfig};
use crate::backends::postgres::{Postgres, PostgresConfig};
use crate::backends::redis::{Redis, RedisConfig};
use crate::limits::Limits;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// gRPC listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Admin HTTP listen address.
    #[serde(default = "default_admin_listen")]
    pub admin_listen: SocketAddr,
    /// How long a drain (SIGTERM/SIGINT) may wait for in-flight requests.
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
    #[serde(default)]
    pub auth: AuthMode,
    /// Serve gRPC over TLS with this certificate (the admin listener stays plain HTTP).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    #[serde(deserialize_with = "unique_namespaces")]
    pub namespaces: BTreeMap<String, NamespaceConfig>,
}

/// A YAML map of namespaces that rejects a name given twice (serde would keep the last).
fn unique_namespaces<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, NamespaceConfig>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = BTreeMap<String, NamespaceConfig>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map from namespace name to its settings")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                if out.contains_key(&name) {
                    return Err(serde::de::Error::custom(format!("duplicate namespace `{name}`")));
                }
                let value = map.next_value()?;
                out.insert(name, value);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visitor)
}

/// `tls: { cert_file: server.pem, key_file: server.key }` (PEM; the certificate file may
/// hold the chain).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// No authentication: for local use only.
    #[default]
    None,
    /// Bearer tokens from an OIDC issuer; namespaces' `groups` say who may use them.
    Oidc(crate::auth::OidcConfig),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    pub backend: BackendConfig,
    /// Interfaces served; all the backend implements when absent.
    #[serde(default)]
    pub interfaces: Option<Vec<Interface>>,
    #[serde(default)]
    pub limits: Limits,
    /// With `auth: oidc`: token groups allowed to use this namespace (any one of them);
    /// absent, any authenticated caller may.
    #[serde(default)]
    pub groups: Option<Vec<String>>,
}

impl NamespaceConfig {
    /// A namespace on `backend`: every interface it implements, default limits, open to any
    /// caller.
    pub fn new(backend: BackendConfig) -> NamespaceConfig {
        NamespaceConfig {
            backend,
            interfaces: None,
            limits: Limits::default(),
            groups: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BackendConfig {
    /// The in-process store; data lives as long as the proxy.
    Memstore,
    /// Redis 6.2 or later: keyvalue_*, pubsub_basic, queue_basic.
    Redis(RedisConfig),
    /// PostgreSQL 13 or later: keyvalue_*, pubsub_basic, queue_basic.
    Postgres(PostgresConfig),
    /// ClickHouse 18.16 or later, over HTTP: timeseries_basic.
    Clickhouse(ClickhouseConfig),
    /// NATS 2.10 or later with JetStream: keyvalue_basic, pubsub_basic, queue_basic.
    Nats(NatsConfig),
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9090))
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text`; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = serde_yaml::from_str(text).map_err(|e| {
            let (line, column, message) = yaml_error_parts(&e);
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message,
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Applies `PRISM_OIDC_ISSUER` and `PRISM_OIDC_AUDIENCE` (what `devstack env` prints):
    /// when the issuer is set, `auth` becomes OIDC with that issuer and audience,
    /// replacing the file's. `var` looks a variable up (`std::env::var` in the binary).
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let Some(issuer) = var("PRISM_OIDC_ISSUER").filter(|v| !v.is_empty()) else {
            return Ok(());
        };
        let invalid = |field: &str, message: String| ConfigError::Invalid {
            path: PathBuf::from("(environment)"),
            field: field.into(),
            message,
        };
        if !(issuer.starts_with("http://") || issuer.starts_with("https://")) {
            return Err(invalid(
                "PRISM_OIDC_ISSUER",
                format!("{issuer:?} is not an http(s) URL"),
            ));
        }
        let audience = var("PRISM_OIDC_AUDIENCE").filter(|v| !v.is_empty()).ok_or_else(|| {
            invalid(
                "PRISM_OIDC_AUDIENCE",
                "required with PRISM_OIDC_ISSUER (the proxy's client id)".into(),
            )
        })?;
        let leeway = match &self.auth {
            AuthMode::Oidc(current) => current.leeway,
            AuthMode::None => crate::auth::oidc::default_leeway(),
        };
        let groups_claim = match &self.auth {
            AuthMode::Oidc(current) => current.groups_claim.clone(),
            AuthMode::None => crate::auth::oidc::default_groups_claim(),
        };
        self.auth = AuthMode::Oidc(crate::auth::OidcConfig {
            issuer,
            audience,
            groups_claim,
            leeway,
        });
        Ok(())
    }

    /// A config with one memstore namespace, as `prism-proxy` runs with no file.
    pub fn single_memstore(namespace: &str) -> Config {
        Config {
            listen: default_listen(),
            admin_listen: default_admin_listen(),
            ..Config::ephemeral([(namespace.to_string(), NamespaceConfig::new(BackendConfig::Memstore))])
        }
    }

    /// `namespaces` on listeners at 127.0.0.1 with ports the kernel picks (read them from
    /// the running proxy): for tests and proxies embedded in other tools.
    pub fn ephemeral(namespaces: impl IntoIterator<Item = (String, NamespaceConfig)>) -> Config {
        let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
        Config {
            listen: any_port,
            admin_listen: any_port,
            drain_timeout: default_drain_timeout(),
            auth: AuthMode::None,
            tls: None,
            namespaces: namespaces.into_iter().collect(),
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: String, message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            field,
            message,
        };
        if self.namespaces.is_empty() {
            return Err(invalid("namespaces".into(), "at least one namespace is needed".into()));
        }
        if let Some(tls) = &self.tls {
            for (field, file) in [("tls.cert_file", &tls.cert_file), ("tls.key_file", &tls.key_file)] {
                if let Err(e) = std::fs::File::open(file) {
                    return Err(invalid(field.into(), format!("cannot read {}: {e}", file.display())));
                }
            }
        }
        for (name, ns) in &self.namespaces {
            let field = |f: &str| format!("namespaces.{name}{f}");
            if !valid_namespace_name(name) {
                return Err(invalid(
                    field(""),
                    "a namespace name is 1-64 characters of a-z, 0-9, '_', '-' and '.'".into(),
                ));
            }
            if let Some(interfaces) = &ns.interfaces {
                let supported = ns.backend.interfaces();
                for interface in interfaces {
                    if !supported.contains(interface) {
                        return Err(invalid(
                            field(".interfaces"),
                            format!(
                                "backend {} does not implement {interface} (it implements: {})",
                                ns.backend.kind(),
                                supported.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        ));
                    }
                }
            }
            if ns.limits.max_in_flight == 0 {
                return Err(invalid(field(".limits.max_in_flight"), "must be at least 1".into()));
            }
        }
        Ok(())
    }
}

/// A serde_yaml error as (line, column, message), for `file:line:column: message`.
/// serde_yaml appends "at line L column C" to its message; the location leads ours.
pub fn yaml_error_parts(e: &serde_yaml::Error) -> (usize, usize, String) {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    let message = e.to_string();
    let message = message.split(" at line ").next().unwrap_or(&message).to_string();
    (line, column, message)
}

fn valid_namespace_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'))
}

impl BackendConfig {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Memstore => "memstore",
            BackendConfig::Redis(_) => "redis",
            BackendConfig::Postgres(_) => "postgres",
            BackendConfig::Clickhouse(_) => "clickhouse",
            BackendConfig::Nats(_) => "nats",
        }
    }

    /// What this backend type implements (without connecting).
    pub fn interfaces(&self) -> Vec<Interface> {
        match self {
            BackendConfig::Memstore => Interface::ALL.to_vec(),
            BackendConfig::Redis(_) | BackendConfig::Postgres(_) => vec![
                Interface::KeyvalueBasic,
                Interface::KeyvalueTtl,
                Interface::KeyvalueScan,
                Interface::KeyvalueBatch,
                Interface::PubsubBasic,
                Interface::QueueBasic,
            ],
            BackendConfig::Clickhouse(_) => vec![Interface::TimeseriesBasic],
            BackendConfig::Nats(_) => vec![Interface::KeyvalueBasic, Interface::PubsubBasic, Interface::QueueBasic],
        }
    }

    /// Creates the driver instance.
    pub async fn connect(&self) -> crate::BackendResult<Backend> {
        match self {
            BackendConfig::Memstore => Ok(MemStore::new().backend()),
            BackendConfig::Redis(config) => Ok(Redis::connect(config)?.backend()),
            BackendConfig::Postgres(config) => Ok(Postgres::connect(config)?.backend()),
            BackendConfig::Clickhouse(config) => Ok(Clickhouse::connect(config)?.backend()),
            BackendConfig::Nats(config) => Ok(Nats::connect(config).await?.backend()),
        }
    }
}

impl NamespaceConfig {
    /// Interfaces this namespace serves.
    pub fn served(&self) -> Vec<Interface> {
        self.interfaces.clone().unwrap_or_else(|| self.backend.interfaces())
    }
}

#[cfg(test)]
mod shipped_configs {
    use super::*;

    /// Every file in proxy/config/ parses, and names the backend its file is named after.
    #[test]
    fn every_shipped_config_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).expect("proxy/config") {
            let path = entry.expect("entry").path();
            let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            assert!(
                config.namespaces.values().all(|ns| ns.backend.kind() == stem),
                "{} configures another backend",
                path.display()
            );
            seen += 1;
        }
        assert!(seen >= 5, "only {seen} configs found");
    }

    /// What validation says a backend serves (`BackendConfig::interfaces`, checked before
    /// any driver exists) is what its driver really serves. Drivers connect lazily, so no
    /// server is needed.
    #[tokio::test]
    async fn declared_interfaces_match_what_each_driver_serves() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let mut kinds = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir(&dir).expect("proxy/config") {
            let config = Config::load(&entry.expect("entry").path()).unwrap_or_else(|e| panic!("{e}"));
            for ns in config.namespaces.values() {
                let driver = ns.backend.connect().await.expect("lazy driver");
                assert_eq!(ns.backend.interfaces(), driver.interfaces(), "{}", ns.backend.kind());
                kinds.insert(ns.backend.kind());
            }
        }
        assert_eq!(kinds.len(), 5, "every backend kind checked: {kinds:?}");
    }

    #[test]
    fn a_misspelled_driver_option_is_an_error_naming_it() {
        let text = "namespaces:\n  a:\n    backend: { type: redis, url: 'redis://x', prefx: p }\n";
        let err = Config::parse(text, Path::new("c.yaml")).unwrap_err().to_string();
        assert!(err.contains("prefx"), "{err}");
    }
}
