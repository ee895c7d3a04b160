//! Where the stack listens and how containers are networked. Every command takes the same
//! flags (or `DEVSTACK_*` variables), so `env` and `token` agree with what `up` started.

use std::path::PathBuf;

/// How containers reach each other and the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A user-defined bridge network `<project>-net`, ports published on 127.0.0.1
    /// (Docker's usual setup on a laptop).
    Bridge,
    /// The host's network: each server listens on its port directly (engines started
    /// with `--bridge=none`, such as CI here).
    Host,
}

/// Ports, names and folders of one developer stack.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Prefix of every container, volume and network (`devstack-dex`, ...).
    pub project: String,
    pub network: NetworkMode,
    /// Identity, token cache and rendered configs live here.
    pub state_dir: PathBuf,
    pub dex_port: u16,
    pub otlp_grpc_port: u16,
    pub otlp_http_port: u16,
    pub ui_port: u16,
    /// Data servers started too (`up --with`), each on its own port.
    pub backends: Vec<crate::stack::backends::Backend>,
}

/// Default host ports (the CLI's defaults too).
pub const DEFAULT_DEX_PORT: u16 = 5556;
pub const DEFAULT_OTLP_GRPC_PORT: u16 = 4317;
pub const DEFAULT_OTLP_HTTP_PORT: u16 = 4318;
pub const DEFAULT_UI_PORT: u16 = 3301;

/// The Dex client the proxy validates tokens for (`aud`).
pub const PROXY_CLIENT_ID: &str = "prism-proxy";
/// The public client `devstack token` and other command-line tools log in with.
pub const CLI_CLIENT_ID: &str = "prism-cli";
/// The group the developer is in; namespaces can require it (`groups: [prism:admin]`).
pub const ADMIN_GROUP: &str = "prism:admin";
/// The only group of the viewer, a second user for trying group checks both ways.
pub const VIEWER_GROUP: &str = "prism:viewer";

impl Settings {
    /// The issuer URL: byte for byte the same in Dex's config, the tokens, the proxy's
    /// `auth.oidc.issuer` and `devstack env`.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}/dex", self.dex_port)
    }

    pub fn otlp_grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp_grpc_port)
    }

    pub fn otlp_http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.otlp_http_port)
    }

    pub fn ui_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ui_port)
    }

    /// The default state folder: `$XDG_STATE_HOME/prism-devstack`, else
    /// `~/.local/state/prism-devstack`.
    pub fn default_state_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir).join("prism-devstack");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        home.join(".local/state/prism-devstack")
    }

    /// Settings with the default ports, for tests and `render`.
    pub fn with_defaults(project: &str, network: NetworkMode, state_dir: PathBuf) -> Settings {
        Settings {
            project: project.to_string(),
            network,
            state_dir,
            dex_port: DEFAULT_DEX_PORT,
            otlp_grpc_port: DEFAULT_OTLP_GRPC_PORT,
            otlp_http_port: DEFAULT_OTLP_HTTP_PORT,
            ui_port: DEFAULT_UI_PORT,
            backends: Vec::new(),
        }
    }
}
