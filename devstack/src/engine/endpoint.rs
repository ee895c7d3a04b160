//! Which Docker engine to talk to, chosen as the `docker` CLI chooses it: `DOCKER_HOST`,
//! else the context `DOCKER_CONTEXT` names, else the CLI's current context (its
//! `config.json`), else the local socket. A context is read from the CLI's own files
//! (`contexts/meta/<sha256 of the name>/meta.json`).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The local socket the engine listens on by default.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// An engine address and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `unix:///...`, `tcp://host:port` or `http://host:port`.
    pub host: String,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    DockerHost,
    /// A named context, from `DOCKER_CONTEXT` or the CLI's current context.
    Context(String),
    Default,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            Source::DockerHost => write!(f, "{} (DOCKER_HOST)", self.host),
            Source::Context(name) => write!(f, "{} (Docker context {name})", self.host),
            Source::Default => write!(f, "{} (the default socket)", self.host),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("Docker context {name:?} ({from}): {path}: {cause}; `docker context ls` lists the contexts")]
    Context {
        name: String,
        from: &'static str,
        path: PathBuf,
        cause: String,
    },
    #[error(
        "{endpoint}: devstack speaks to engines over unix:// sockets and plain tcp:// only; for ssh:// forward the socket (ssh -L /tmp/docker.sock:/var/run/docker.sock host) and set DOCKER_HOST=unix:///tmp/docker.sock"
    )]
    Unsupported { endpoint: String },
}

impl Endpoint {
    /// Whether published ports are on this machine, where the issuer URL and the
    /// proxy's config (both 127.0.0.1) point.
    pub fn is_local(&self) -> bool {
        let rest = self
            .host
            .strip_prefix("tcp://")
            .or_else(|| self.host.strip_prefix("http://"));
        match rest {
            None => self.host.starts_with("unix://"),
            Some(address) => {
                let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
                matches!(host, "127.0.0.1" | "localhost" | "[::1]")
            }
        }
    }

    /// The engine for this process's environment and the CLI's config folder
    /// (`DOCKER_CONFIG`, else `~/.docker`).
    pub fn from_env() -> Result<Endpoint, EndpointError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let config_dir = var("DOCKER_CONFIG").map(PathBuf::from).unwrap_or_else(|| {
            var("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".docker")
        });
        Endpoint::resolve(var, &config_dir)
    }

    /// The engine for the variables `var` gives and the CLI config folder `config_dir`.
    pub fn resolve(var: impl Fn(&str) -> Option<String>, config_dir: &Path) -> Result<Endpoint, EndpointError> {
        let endpoint = if let Some(host) = var("DOCKER_HOST") {
            Endpoint {
                host,
                source: Source::DockerHost,
            }
        } else {
            let named = match var("DOCKER_CONTEXT") {
                Some(name) => Some((name, "DOCKER_CONTEXT")),
                None => current_context(config_dir)?.map(|name| (name, "the current context in config.json")),
            };
            match named {
                Some((name, from)) if name != "default" => context(config_dir, name, from)?,
                _ => Endpoint {
                    host: DEFAULT_HOST.into(),
                    source: Source::Default,
                },
            }
        };
        match endpoint.host.split("://").next() {
            Some("unix" | "tcp" | "http") => Ok(endpoint),
            _ => Err(EndpointError::Unsupported {
                endpoint: endpoint.to_string(),
            }),
        }
    }
}

/// The `currentContext` of the CLI's `config.json`, if it has one.
fn current_context(config_dir: &Path) -> Result<Option<String>, EndpointError> {
    let path = config_dir.join("config.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| EndpointError::Context {
        name: "?".into(),
        from: "config.json",
        path: path.clone(),
        cause: format!("not JSON: {e}"),
    })?;
    Ok(config["currentContext"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from))
}

/// The engine address of context `name`.
fn context(config_dir: &Path, name: String, from: &'static str) -> Result<Endpoint, EndpointError> {
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let path = config_dir.join("contexts/meta").join(hex).join("meta.json");
    let fail = |cause: String| EndpointError::Context {
        name: name.clone(),
        from,
        path: path.clone(),
        cause,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| fail(format!("no such context ({e})")))?;
    let meta: serde_json::Value = serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    let docker = &meta["Endpoints"]["docker"];
    let host = docker["Host"]
        .as_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| fail("names no Endpoints.docker.Host".into()))?;
    if host.starts_with("tcp://") && !docker["SkipTLSVerify"].as_bool().unwrap_or(false) {
        let tls = config_dir.join("contexts/tls").join(path_hash(&path)).join("docker");
        if tls.exists() {
            return Err(fail(format!(
                "{host} with TLS certificates ({}): devstack speaks plain tcp:// only",
                tls.display()
            )));
        }
    }
    Ok(Endpoint {
        host: host.to_string(),
        source: Source::Context(name),
    })
}

/// The context's hash folder name (shared by its meta and tls folders).
fn path_hash(meta: &Path) -> String {
    meta.parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context_dir(config: &Path, name: &str, host: &str) {
        let hex: String = Sha256::digest(name.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let dir = config.join("contexts/meta").join(hex);
        std::fs::create_dir_all(&dir).unwrap();
        let meta = serde_json::json!({"Name": name, "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": false}}});
        std::fs::write(dir.join("meta.json"), meta.to_string()).unwrap();
    }

    #[test]
    fn docker_host_then_docker_context_then_the_current_context_then_the_socket() {
        let config = tempfile::tempdir().unwrap();
        let none = |_: &str| None;
        let resolve = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Endpoint::resolve(
                move |n| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()),
                config.path(),
            )
        };
        assert_eq!(Endpoint::resolve(none, config.path()).unwrap().source, Source::Default);

        context_dir(config.path(), "laptop", "unix:///run/user/1000/docker.sock");
        context_dir(config.path(), "remote", "tcp://10.0.0.5:2375");
        std::fs::write(config.path().join("config.json"), r#"{"currentContext":"laptop"}"#).unwrap();
        let current = resolve(&[]).unwrap();
        assert_eq!(current.host, "unix:///run/user/1000/docker.sock");
        assert_eq!(current.source, Source::Context("laptop".into()));
        assert!(current.is_local());

        let named = resolve(&[("DOCKER_CONTEXT", "remote")]).unwrap();
        assert_eq!(named.host, "tcp://10.0.0.5:2375");
        assert!(!named.is_local());
        assert!(named.to_string().contains("Docker context remote"), "{named}");

        let host = resolve(&[("DOCKER_HOST", "tcp://127.0.0.1:2375"), ("DOCKER_CONTEXT", "remote")]).unwrap();
        assert_eq!(host.source, Source::DockerHost);
        assert!(host.is_local());

        let default = resolve(&[("DOCKER_CONTEXT", "default")]).unwrap();
        assert_eq!(default.host, DEFAULT_HOST);

        let missing = resolve(&[("DOCKER_CONTEXT", "gone")]).unwrap_err().to_string();
        assert!(
            missing.contains("\"gone\"") && missing.contains("DOCKER_CONTEXT") && missing.contains("docker context ls"),
            "{missing}"
        );
        let ssh = resolve(&[("DOCKER_HOST", "ssh://me@box")]).unwrap_err().to_string();
        assert!(ssh.contains("ssh -L"), "{ssh}");
    }
}
