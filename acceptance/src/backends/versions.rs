//! More server versions for the matrix: each entry of `registry/versions.yaml` is a row
//! of its own, a built-in server backend (its driver, suites and capabilities) run
//! against another server binary, as a process. Adding a version is one line there.
//!
//! ```yaml
//! redis:
//!   - {row: valkey-8.0, binary: valkey-server}
//! ```
//!
//! `binary` is a name looked up on PATH (then in the backend's own folders) or a path. A
//! version whose binary is missing is a skip with the reason, a failure in strict mode.

use std::collections::BTreeMap;

use async_trait::async_trait;
use prism_proxy::Interface;
use prism_proxy::backends::Backend;
use prism_proxy::config::BackendConfig;
use serde::Deserialize;

use super::ServerBackend;
use crate::provision::{ServerSpec, process};
use crate::{BackendDecl, Capability, Instance};

/// One more version of a backend's server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    /// The row's name in trial names and the matrix (`redis-8.2`).
    pub row: String,
    /// The server binary: a name on PATH or a path.
    pub binary: String,
}

/// `registry/versions.yaml`: backend name -> its extra versions.
pub type VersionsFile = BTreeMap<String, Vec<VersionEntry>>;

#[derive(Debug, thiserror::Error)]
pub enum VersionsError {
    #[error("{path}: {cause}")]
    Read { path: String, cause: String },
    #[error("{path}: backend {backend:?} has no server the harness starts (known: {known})")]
    UnknownBackend {
        path: String,
        backend: String,
        known: String,
    },
    #[error(
        "{path}: row {row:?}: use 1-40 characters of a-z, 0-9, '-', '.' and '_' (it names trials and a proxy namespace)"
    )]
    BadRow { path: String, row: String },
    #[error("{path}: row {row:?} appears twice")]
    Duplicate { path: String, row: String },
}

/// A built-in server backend at another version.
pub struct VersionedServer {
    base: &'static ServerBackend,
    row: &'static str,
    /// The base's spec with this version's binary.
    spec: &'static ServerSpec,
}

/// The rows of the versions file `text` (named `shown` in errors), for the built-in
/// `servers`.
pub fn parse(
    text: &str,
    shown: &str,
    servers: &[&'static ServerBackend],
) -> Result<Vec<VersionedServer>, VersionsError> {
    let shown = shown.to_string();
    let file: VersionsFile = serde_yaml::from_str(text).map_err(|e| VersionsError::Read {
        path: shown.clone(),
        cause: e.to_string(),
    })?;
    let mut rows = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (backend, entries) in file {
        let base = servers
            .iter()
            .copied()
            .find(|s| s.spec.backend == backend)
            .ok_or_else(|| VersionsError::UnknownBackend {
                path: shown.clone(),
                backend: backend.clone(),
                known: servers.iter().map(|s| s.spec.backend).collect::<Vec<_>>().join(", "),
            })?;
        for entry in entries {
            let valid = (1..=40).contains(&entry.row.len())
                && entry
                    .row
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c));
            if !valid {
                return Err(VersionsError::BadRow {
                    path: shown,
                    row: entry.row,
                });
            }
            if !seen.insert(entry.row.clone()) || servers.iter().any(|s| s.spec.backend == entry.row) {
                return Err(VersionsError::Duplicate {
                    path: shown,
                    row: entry.row,
                });
            }
            // Leaked once per run: the specs and names live as long as the process.
            let spec: &'static ServerSpec = Box::leak(Box::new(ServerSpec {
                binary: Box::leak(entry.binary.into_boxed_str()),
                ..*base.spec
            }));
            rows.push(VersionedServer {
                base,
                row: Box::leak(entry.row.into_boxed_str()),
                spec,
            });
        }
    }
    Ok(rows)
}

#[async_trait]
impl BackendDecl for VersionedServer {
    fn name(&self) -> &'static str {
        self.row
    }

    fn interfaces(&self) -> Vec<Interface> {
        self.base.interfaces()
    }

    fn capabilities(&self) -> Vec<Capability> {
        self.base.capabilities()
    }

    async fn provision(&self) -> anyhow::Result<Instance> {
        // This binary and no other: not the backend's URL, image or default binary.
        process::start(self.spec).await
    }

    async fn connect(&self, instance: &Instance) -> anyhow::Result<Backend> {
        self.base.connect(instance).await
    }

    fn in_registry(&self) -> bool {
        // Its claim is the base backend's, checked in that backend's row.
        false
    }

    fn proxy_backend(&self, instance: &Instance) -> Option<BackendConfig> {
        self.base.proxy_backend(instance)
    }

    async fn server_version(&self, instance: &Instance) -> anyhow::Result<Option<String>> {
        self.base.server_version(instance).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::{NATS, REDIS};

    fn rows(text: &str) -> Result<Vec<VersionedServer>, VersionsError> {
        parse(text, "versions.yaml", &[&REDIS, &NATS])
    }

    #[test]
    fn each_line_is_a_row_with_its_backends_claim_and_its_own_binary() {
        let rows = rows(
            "redis:\n  - {row: valkey-8.0, binary: valkey-server}\nnats:\n  - {row: nats-2.10, binary: /opt/nats}\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 2);
        let nats = rows.iter().find(|r| r.name() == "nats-2.10").unwrap();
        assert_eq!(nats.spec.binary, "/opt/nats");
        assert_eq!(nats.spec.backend, "nats");
        assert_eq!(nats.interfaces(), NATS.interfaces());
        assert!(!nats.in_registry());
    }

    #[test]
    fn bad_files_name_the_file_and_what_is_wrong() {
        let unknown = rows("mongodb:\n  - {row: m, binary: mongod}\n")
            .err()
            .unwrap()
            .to_string();
        assert!(
            unknown.contains("versions.yaml") && unknown.contains("\"mongodb\"") && unknown.contains("redis"),
            "{unknown}"
        );
        let bad = rows("redis:\n  - {row: Redis 8, binary: x}\n")
            .err()
            .unwrap()
            .to_string();
        assert!(bad.contains("\"Redis 8\""), "{bad}");
        let twice = rows("redis:\n  - {row: r8, binary: a}\n  - {row: r8, binary: b}\n")
            .err()
            .unwrap()
            .to_string();
        assert!(twice.contains("twice"), "{twice}");
        let shadow = rows("redis:\n  - {row: nats, binary: a}\n").err().unwrap().to_string();
        assert!(shadow.contains("\"nats\""), "{shadow}");
        let field = rows("redis:\n  - {row: r8, bin: a}\n").err().unwrap().to_string();
        assert!(field.contains("bin"), "{field}");
    }
}
