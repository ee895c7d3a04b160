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
//! transport: { max_connections: 1024 }              # optional; see `TransportConfig`
//! ```
//!
//! Unknown keys are errors. Every error names the file, and the line and column or the
//! field at fault.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::auth::OidcConfig;
pub use crate::backends::BackendConfig;
use crate::validation::Problems;
use crate::{Interface, Limits};

/// Why a config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Every problem found, with `file:line:column` and the field.
    #[error("{0}")]
    Invalid(Problems),
}

/// The proxy's configuration: listeners, auth, TLS and namespaces.
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
    /// Who may call.
    #[serde(default)]
    pub auth: AuthMode,
    /// Serve gRPC over TLS with this certificate (the admin listener stays plain HTTP).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Bounds on connections and HTTP/2 on the gRPC listener.
    #[serde(default)]
    pub transport: TransportConfig,
    /// Where request spans go; the `OTEL_EXPORTER_OTLP_*` variables, when set, win.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The namespaces by name.
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
    /// The certificate (chain), PEM.
    pub cert_file: PathBuf,
    /// Its private key, PEM.
    pub key_file: PathBuf,
}

/// `telemetry: { otlp: { endpoint: http://127.0.0.1:4317, protocol: grpc } }`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Export request spans over OTLP; absent, none are (unless the variables say so).
    #[serde(default)]
    pub otlp: Option<OtlpConfig>,
}

/// An OTLP collector, as the standard variables would name it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's base URL (`http://host:4317` for gRPC, `http://host:4318` for
    /// HTTP, where `/v1/traces` is added), as `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: String,
    /// `grpc` or `http/protobuf` (the default), as `OTEL_EXPORTER_OTLP_PROTOCOL`.
    #[serde(default = "default_otlp_protocol")]
    pub protocol: String,
}

fn default_otlp_protocol() -> String {
    "http/protobuf".into()
}

/// `auth: none` or `auth: { oidc: { issuer, audience, ... } }` (the YAML tag form
/// `auth: !oidc { ... }` is read too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AuthMode {
    /// No authentication: for local use only.
    #[default]
    None,
    /// Bearer tokens from an OIDC issuer; namespaces' `groups` say who may use them.
    Oidc(OidcConfig),
}

impl<'de> Deserialize<'de> for AuthMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<AuthMode, D::Error> {
        use serde::de::Error;
        let expected = "expected `none` or `{ oidc: { issuer: URL, audience: CLIENT_ID } }`";
        let settings = match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(word) if word == "none" => return Ok(AuthMode::None),
            serde_yaml::Value::Mapping(map) if map.len() == 1 => match map.into_iter().next() {
                Some((serde_yaml::Value::String(key), settings)) if key == "oidc" => settings,
                Some((key, _)) => return Err(D::Error::custom(format!("unknown auth {key:?}; {expected}"))),
                None => return Err(D::Error::custom(expected)),
            },
            serde_yaml::Value::Tagged(tagged) if tagged.tag == "oidc" => tagged.value,
            _ => return Err(D::Error::custom(expected)),
        };
        OidcConfig::deserialize(settings)
            .map(AuthMode::Oidc)
            .map_err(|e| D::Error::custom(format!("oidc: {e}")))
    }
}

/// One namespace: its backend, what it serves, its limits, who may use it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceConfig {
    /// The backend and its settings.
    pub backend: BackendConfig,
    /// Interfaces served; all the backend implements when absent.
    #[serde(default)]
    pub interfaces: Option<Vec<Interface>>,
    /// Request limits; see [`Limits`].
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
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates `text`; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let source = path.display().to_string();
        let config: Config = serde_yaml::from_str(text)
            .map_err(|e| ConfigError::Invalid(Problems::from_yaml_error(&source, &e, text)))?;
        let mut problems = Problems::new(source);
        config.validate(&mut problems);
        problems.locate_in(text).into_result().map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// Applies `PRISM_OIDC_ISSUER` and `PRISM_OIDC_AUDIENCE` (what `devstack env` prints):
    /// when the issuer is set, `auth` becomes OIDC with that issuer and audience,
    /// replacing the file's. `var` looks a variable up (`std::env::var` in the binary).
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let Some(issuer) = var("PRISM_OIDC_ISSUER").filter(|v| !v.is_empty()) else {
            return Ok(());
        };
        let invalid = |field: &str, message: String| {
            let mut problems = Problems::new("(environment)");
            problems.add(field, message);
            ConfigError::Invalid(problems)
        };
        if let Some(problem) = crate::auth::issuer_problem(&issuer) {
            return Err(invalid("PRISM_OIDC_ISSUER", problem));
        }
        let audience = var("PRISM_OIDC_AUDIENCE").filter(|v| !v.is_empty()).ok_or_else(|| {
            invalid(
                "PRISM_OIDC_AUDIENCE",
                "required with PRISM_OIDC_ISSUER (the proxy's client id)".into(),
            )
        })?;
        let leeway = match &self.auth {
            AuthMode::Oidc(current) => current.leeway,
            AuthMode::None => crate::auth::default_leeway(),
        };
        let groups_claim = match &self.auth {
            AuthMode::Oidc(current) => current.groups_claim.clone(),
            AuthMode::None => crate::auth::default_groups_claim(),
        };
        self.auth = AuthMode::Oidc(OidcConfig {
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
            ..Config::ephemeral([(namespace.to_string(), NamespaceConfig::new(BackendConfig::memstore()))])
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
            transport: TransportConfig::default(),
            telemetry: TelemetryConfig::default(),
            namespaces: namespaces.into_iter().collect(),
        }
    }

    /// Every meaning error at once (types were checked by the parser).
    fn validate(&self, problems: &mut Problems) {
        if self.namespaces.is_empty() {
            problems.add("namespaces", "at least one namespace is needed");
        }
        if let AuthMode::Oidc(oidc) = &self.auth
            && let Some(problem) = crate::auth::issuer_problem(&oidc.issuer)
        {
            problems.add("auth.oidc.issuer", problem);
        }
        if let Some(otlp) = &self.telemetry.otlp {
            if !matches!(otlp.protocol.as_str(), "grpc" | "http/protobuf") {
                problems.add(
                    "telemetry.otlp.protocol",
                    format!("{:?}: expected grpc or http/protobuf", otlp.protocol),
                );
            }
            match otlp.endpoint.parse::<http::Uri>() {
                Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some() => {}
                _ => problems.add(
                    "telemetry.otlp.endpoint",
                    format!("{:?}: expected a URL such as http://127.0.0.1:4317", otlp.endpoint),
                ),
            }
        }
        if let Some(tls) = &self.tls {
            for (field, file) in [("tls.cert_file", &tls.cert_file), ("tls.key_file", &tls.key_file)] {
                if let Err(e) = std::fs::File::open(file) {
                    problems.add(field, format!("cannot read {}: {e}", file.display()));
                }
            }
        }
        for (name, ns) in &self.namespaces {
            let field = |f: &str| format!("namespaces.{name}{f}");
            if !valid_namespace_name(name) {
                problems.add(
                    field(""),
                    "a namespace name is 1-64 characters of a-z, 0-9, '_', '-' and '.'",
                );
            }
            let supported = ns.backend.driver().interfaces;
            for interface in ns.interfaces.iter().flatten() {
                if !supported.contains(interface) {
                    problems.add(
                        field(".interfaces"),
                        format!(
                            "backend {} does not implement {interface} (it implements: {})",
                            ns.backend.kind(),
                            supported.iter().map(|i| i.as_str()).collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
            }
            for (setting, problem) in ns.backend.problems() {
                problems.add(field(&format!(".backend.{setting}")), problem);
            }
            ns.limits
                .problems(&|limit| field(&format!(".limits.{limit}")), problems);
        }
        self.transport.validate(problems);
        if let Some((name, ns)) = self.namespaces.iter().max_by_key(|(_, ns)| ns.limits.max_message_bytes)
            && ns.limits.max_message_bytes > self.transport.max_buffered_request_bytes
        {
            problems.add(
                "transport.max_buffered_request_bytes",
                format!(
                    "must be at least namespace {name}'s max_message_bytes ({}), or its largest message could never be read",
                    ns.limits.max_message_bytes
                ),
            );
        }
        self.validate_isolation(problems);
    }

    /// Namespaces on one server must not be able to name each other's data: no prefix may
    /// start another's (an empty prefix starts every one). Otherwise a caller allowed in
    /// one namespace could read and write the other's keys.
    fn validate_isolation(&self, problems: &mut Problems) {
        let shared: Vec<(&String, String, &str)> = self
            .namespaces
            .iter()
            .filter_map(|(name, ns)| {
                ns.backend
                    .shared_server()
                    .map(|(server, prefix)| (name, server, prefix))
            })
            .collect();
        for (i, (a, server_a, prefix_a)) in shared.iter().enumerate() {
            for (b, server_b, prefix_b) in &shared[i + 1..] {
                if server_a == server_b && (prefix_a.starts_with(prefix_b) || prefix_b.starts_with(prefix_a)) {
                    problems.add(
                        format!("namespaces.{b}.backend.prefix"),
                        format!(
                            "{prefix_b:?} and namespace {a}'s {prefix_a:?} share {server_a}, and one starts the other, so each could name the other's keys; give both prefixes that do not start one another (e.g. \"{a}:\" and \"{b}:\")"
                        ),
                    );
                }
            }
        }
    }
}

/// Bounds on the gRPC listener (`transport:`), applied before any request is read. Memory
/// for requests is at most `max_buffered_request_bytes` (messages being read or served)
/// plus `max_connections` x `connection_window_bytes` (bytes received but not yet read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// Connections served at once; one more is closed as soon as it is accepted.
    pub max_connections: u32,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`: requests one connection may have open.
    pub max_concurrent_streams: u32,
    /// Initial HTTP/2 flow-control window of a stream: bytes a client may send before the
    /// proxy reads them.
    pub stream_window_bytes: u32,
    /// Initial HTTP/2 flow-control window of a connection, across its streams.
    pub connection_window_bytes: u32,
    /// HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`: the largest header block accepted.
    pub max_header_list_bytes: u32,
    /// Request message bytes the proxy holds at once, across every connection and
    /// namespace (bytes that arrived, until their request is done); a request whose
    /// bytes would go over gets RESOURCE_EXHAUSTED at once.
    pub max_buffered_request_bytes: u32,
    /// How long a request's message may take to arrive once its headers have; a slower
    /// one is ended with DEADLINE_EXCEEDED and gives back its place.
    #[serde(with = "humantime_serde")]
    pub request_body_timeout: Duration,
    /// How often an HTTP/2 PING checks that a connection's peer is still there.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// How long a PING may go unanswered before the connection is closed (its
    /// subscriptions end and free their backend resources).
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// TCP keepalive idle time, for peers that vanish without closing.
    #[serde(with = "humantime_serde")]
    pub tcp_keepalive: Duration,
    /// A connection with no call open for this long is closed (gRPC's
    /// MAX_CONNECTION_IDLE; PINGs do not count), so idle clients give back their place
    /// among `max_connections`; gRPC clients reconnect on their next call.
    #[serde(with = "humantime_serde")]
    pub max_connection_idle: Duration,
    /// Bind the gRPC listener with `SO_REUSEPORT`, so several proxy processes on one host
    /// share its port and the kernel spreads new connections over them: one
    /// `--runtime current-thread` process per core serves more than one process with a
    /// worker per core (reports/baseline/scaling.md). Each process keeps its own memstore
    /// data and needs its own `admin_listen`.
    pub reuse_port: bool,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_connections: 1024,
            max_concurrent_streams: 256,
            stream_window_bytes: 1024 * 1024,
            connection_window_bytes: 1024 * 1024,
            max_header_list_bytes: 16 * 1024,
            max_buffered_request_bytes: 512 * 1024 * 1024,
            request_body_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            tcp_keepalive: Duration::from_secs(60),
            max_connection_idle: Duration::from_secs(300),
            reuse_port: false,
        }
    }
}

impl TransportConfig {
    fn validate(&self, problems: &mut Problems) {
        // RFC 9113 6.9.2: windows are at least the protocol's initial 65,535 and at most 2^31-1.
        const WINDOW: std::ops::RangeInclusive<u32> = 65_535..=(1 << 31) - 1;
        let field = |f: &str| format!("transport.{f}");
        for (name, value, least) in [
            ("max_connections", self.max_connections, 1),
            ("max_concurrent_streams", self.max_concurrent_streams, 1),
            ("max_header_list_bytes", self.max_header_list_bytes, 1024),
        ] {
            if value < least {
                problems.add(field(name), format!("must be at least {least}"));
            }
        }
        for (name, value) in [
            ("stream_window_bytes", self.stream_window_bytes),
            ("connection_window_bytes", self.connection_window_bytes),
        ] {
            if !WINDOW.contains(&value) {
                problems.add(
                    field(name),
                    format!(
                        "must be from {} to {} (HTTP/2 window bounds)",
                        WINDOW.start(),
                        WINDOW.end()
                    ),
                );
            }
        }
        for (name, value) in [
            ("keepalive_interval", self.keepalive_interval),
            ("keepalive_timeout", self.keepalive_timeout),
            ("tcp_keepalive", self.tcp_keepalive),
            ("request_body_timeout", self.request_body_timeout),
            ("max_connection_idle", self.max_connection_idle),
        ] {
            if value < Duration::from_secs(1) {
                problems.add(field(name), "must be at least 1s");
            }
        }
    }
}

/// `url` with its password and user hidden, for logs: `redis://user:pw@host` becomes
/// `redis://***@host`, and `password=...` in a key=value string becomes `password=***`.
pub(crate) fn redact_credentials(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            return format!("{scheme}://***@{}", &rest[at + 1..]);
        }
        return url.to_string();
    }
    url.split(' ')
        .map(|part| match part.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn valid_namespace_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'))
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

    /// `proxy/config/<kind>.yaml` of every driver compiled in: the example users start from.
    fn examples() -> Vec<(&'static str, Config)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        crate::backends::drivers()
            .iter()
            .map(|driver| {
                let path = dir.join(format!("{}.yaml", driver.kind));
                (driver.kind, Config::load(&path).unwrap_or_else(|e| panic!("{e}")))
            })
            .collect()
    }

    /// `telemetry.otlp`: read as written, and a bad protocol or endpoint named by field.
    #[test]
    fn telemetry_otlp_is_read_and_checked() {
        let ns = "namespaces: { a: { backend: { type: memstore } } }\n";
        let ok = format!("telemetry:\n  otlp: {{ endpoint: 'http://127.0.0.1:4317', protocol: grpc }}\n{ns}");
        let config = Config::parse(&ok, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let otlp = config.telemetry.otlp.expect("otlp");
        assert_eq!(
            (otlp.endpoint.as_str(), otlp.protocol.as_str()),
            ("http://127.0.0.1:4317", "grpc")
        );
        let default = format!("telemetry: {{ otlp: {{ endpoint: 'http://c:4318' }} }}\n{ns}");
        let config = Config::parse(&default, Path::new("t.yaml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.telemetry.otlp.expect("otlp").protocol, "http/protobuf");

        let bad = format!("telemetry:\n  otlp: {{ endpoint: 'localhost 4317', protocol: udp }}\n{ns}");
        let err = Config::parse(&bad, Path::new("t.yaml")).unwrap_err().to_string();
        for part in [
            "telemetry.otlp.protocol",
            "\"udp\"",
            "telemetry.otlp.endpoint",
            "t.yaml:2",
        ] {
            assert!(err.contains(part), "{part:?} missing from: {err}");
        }
        let unknown = format!("telemetry: {{ otlp: {{ endpoint: 'http://c:1', headers: x }} }}\n{ns}");
        let err = Config::parse(&unknown, Path::new("t.yaml")).unwrap_err().to_string();
        assert!(err.contains("headers"), "{err}");
    }

    /// Every driver has an example config that parses and configures that driver; with
    /// every driver compiled in, there is no other file.
    #[test]
    fn every_driver_has_an_example_config() {
        for (kind, config) in examples() {
            assert!(
                config.namespaces.values().all(|ns| ns.backend.kind() == kind),
                "{kind}.yaml"
            );
        }
        #[cfg(all(feature = "redis", feature = "postgres", feature = "nats", feature = "clickhouse"))]
        {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
            let files = std::fs::read_dir(&dir).expect("proxy/config").count();
            assert_eq!(
                files,
                crate::backends::drivers().len(),
                "a file in proxy/config/ for no driver"
            );
        }
    }

    /// What validation says a backend serves (the driver's `DriverInfo`, read before any
    /// driver exists) is what its driver really serves. Drivers connect lazily, so no
    /// server is needed.
    #[tokio::test]
    async fn declared_interfaces_match_what_each_driver_serves() {
        for (kind, config) in examples() {
            for ns in config.namespaces.values() {
                let driver = ns.backend.connect().await.expect("lazy driver");
                assert_eq!(ns.backend.interfaces(), driver.interfaces(), "{kind}");
                assert_eq!(driver.kind, kind);
            }
        }
    }

    /// The README's configuration examples parse as written: the namespaces block and
    /// the `auth:` forms it documents.
    #[test]
    fn the_readme_examples_parse() {
        let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
        let section = readme.split("### Configuring namespaces").nth(1).expect("the section");
        let block = section
            .split("```yaml\n")
            .nth(1)
            .and_then(|b| b.split("```").next())
            .expect("its yaml");
        let config = Config::parse(block, Path::new("README.md")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.namespaces.len(), 2);
        let auth_lines: Vec<&str> = readme.split('`').filter(|s| s.starts_with("auth: {")).collect();
        assert!(!auth_lines.is_empty(), "the README documents `auth: {{ oidc: ... }}`");
        for auth in auth_lines {
            let text = format!("{auth}\nnamespaces: {{ a: {{ backend: {{ type: memstore }} }} }}\n");
            let config = Config::parse(&text, Path::new("README.md")).unwrap_or_else(|e| panic!("{auth}: {e}"));
            assert!(matches!(config.auth, AuthMode::Oidc(_)), "{auth}");
        }
        // The tag form is read too, and anything else is refused with what is expected.
        let tagged = "auth: !oidc { issuer: 'https://dex.example/dex', audience: p }\nnamespaces: { a: { backend: { type: memstore } } }\n";
        assert!(matches!(
            Config::parse(tagged, Path::new("t.yaml")).unwrap().auth,
            AuthMode::Oidc(_)
        ));
        let bad = "auth: { ldap: {} }\nnamespaces: { a: { backend: { type: memstore } } }\n";
        let err = Config::parse(bad, Path::new("t.yaml")).unwrap_err().to_string();
        assert!(
            err.contains("t.yaml:1:") && err.contains("ldap") && err.contains("expected"),
            "{err}"
        );
    }

    /// Two namespaces on one server whose prefixes start one another are refused, naming
    /// both; distinct prefixes, or other servers, are fine.
    #[cfg(all(feature = "redis", feature = "postgres"))]
    #[test]
    fn namespaces_sharing_a_server_must_not_overlap() {
        let config = |a: &str, b: &str, url_b: &str| {
            format!(
                "namespaces:\n  open:\n    backend: {{ type: redis, url: 'redis://127.0.0.1:6379', prefix: '{a}' }}\n  \
                 secret:\n    backend: {{ type: redis, url: '{url_b}', prefix: '{b}' }}\n  \
                 pg:\n    backend: {{ type: postgres, url: 'postgres://127.0.0.1/x', prefix: '' }}\n"
            )
        };
        for (a, b) in [("", "secret:"), ("a", "ak:"), ("x:", "x:"), ("app", "app:")] {
            let err = Config::parse(&config(a, b, "redis://127.0.0.1:6379"), Path::new("c.yaml"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("namespaces.secret.backend.prefix") && err.contains("namespace open"),
                "{a:?} / {b:?}: {err}"
            );
        }
        Config::parse(
            &config("open:", "secret:", "redis://127.0.0.1:6379"),
            Path::new("c.yaml"),
        )
        .expect("distinct prefixes");
        Config::parse(&config("", "", "redis://127.0.0.1:6380"), Path::new("c.yaml")).expect("another server");
    }

    /// Transport and limit settings out of range are each reported, naming the field, the
    /// bound and its reason, all at once; the defaults validate.
    #[test]
    fn transport_and_limit_bounds_are_checked_together() {
        let text = "transport:\n  max_connections: 0\n  stream_window_bytes: 100\n  keepalive_timeout: 0s\n  max_connection_idle: 500ms\n  max_buffered_request_bytes: 2048\n\
                    namespaces:\n  a:\n    backend: { type: memstore }\n    limits: { max_message_bytes: 4096, max_subscriber_buffer_bytes: 1024, max_value_bytes: 2048 }\n";
        let err = Config::parse(text, Path::new("c.yaml")).unwrap_err().to_string();
        for expected in [
            "transport.max_connections",
            "transport.stream_window_bytes",
            "HTTP/2 window bounds",
            "transport.keepalive_timeout",
            "transport.max_connection_idle",
            "transport.max_buffered_request_bytes",
            "namespace a's max_message_bytes (4096)",
            "namespaces.a.limits.max_subscriber_buffer_bytes",
        ] {
            assert!(err.contains(expected), "{expected:?} missing from:\n{err}");
        }
        let ok = Config::parse(
            "namespaces:\n  a:\n    backend: { type: memstore }\n",
            Path::new("c.yaml"),
        )
        .expect("defaults validate");
        assert_eq!(ok.transport, TransportConfig::default());
    }

    #[cfg(feature = "nats")]
    #[test]
    fn driver_settings_are_checked_with_the_rest() {
        let text = "namespaces:\n  q:\n    backend: { type: nats, url: 'nats://127.0.0.1:4222', ack_wait: 0s, queue_inactive_threshold: 10ms }\n    limits: { max_in_flight: 0 }\n";
        let err = Config::parse(text, Path::new("c.yaml")).unwrap_err().to_string();
        for expected in [
            "namespaces.q.backend.ack_wait",
            "namespaces.q.backend.queue_inactive_threshold",
            "namespaces.q.limits.max_in_flight",
        ] {
            assert!(err.contains(expected), "{expected:?} missing from:\n{err}");
        }
    }

    #[test]
    fn credentials_are_hidden_in_logged_urls() {
        assert_eq!(
            redact_credentials("redis://user:s3cret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(
            redact_credentials("postgres://p:pw@127.0.0.1/db"),
            "postgres://***@127.0.0.1/db"
        );
        assert_eq!(redact_credentials("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(
            redact_credentials("host=db user=app password=s3cret dbname=x"),
            "host=db user=app password=*** dbname=x"
        );
    }

    #[cfg(feature = "redis")]
    #[test]
    fn a_misspelled_driver_option_is_an_error_naming_it() {
        let text = "namespaces:\n  a:\n    backend: { type: redis, url: 'redis://x', prefx: p }\n";
        let err = Config::parse(text, Path::new("c.yaml")).unwrap_err().to_string();
        assert!(err.contains("prefx"), "{err}");
    }
}
