//! `acceptance/registry/<backend>.yaml`: the claim a backend makes, for humans, checked
//! against its declaration in code.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use prism_proxy::Interface;
use serde::Deserialize;

use crate::{BackendDecl, Capability};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryEntry {
    pub backend: String,
    pub description: String,
    pub implements: Vec<Interface>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

/// Where registry files live.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("registry")
}

/// Loads `<dir>/<backend>.yaml`.
pub fn load(dir: &Path, backend: &str) -> anyhow::Result<RegistryEntry> {
    load_file(&dir.join(format!("{backend}.yaml")))
}

/// Loads one registry file (an out-of-tree plugin's claim, for instance).
pub fn load_file(path: &Path) -> anyhow::Result<RegistryEntry> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read registry file {}: {e}", path.display()))?;
    serde_yaml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// Every difference between the YAML claim and the code's declaration.
pub fn differences(entry: &RegistryEntry, decl: &dyn BackendDecl) -> Vec<String> {
    differences_from(entry, decl, "the code")
}

/// The same, `decl`'s claim coming from `source` ("the code", "the server").
pub fn differences_from(entry: &RegistryEntry, decl: &dyn BackendDecl, source: &str) -> Vec<String> {
    let mut out = Vec::new();
    if entry.backend != decl.name() {
        out.push(format!(
            "`backend: {}` but {source} declares {}",
            entry.backend,
            decl.name()
        ));
    }
    if entry.description.trim().is_empty() {
        out.push("`description` is empty".into());
    }
    let diff = |what: &str, yaml: BTreeSet<String>, code: BTreeSet<String>, out: &mut Vec<String>| {
        for only in yaml.difference(&code) {
            out.push(format!("`{what}` lists {only}, which {source} does not declare"));
        }
        for only in code.difference(&yaml) {
            out.push(format!("{source} declares {what} {only}, which the YAML does not list"));
        }
    };
    diff(
        "implements",
        entry.implements.iter().map(|i| i.to_string()).collect(),
        decl.interfaces().iter().map(|i| i.to_string()).collect(),
        &mut out,
    );
    diff(
        "capabilities",
        entry.capabilities.iter().map(|c| c.to_string()).collect(),
        decl.capabilities().iter().map(|c| c.to_string()).collect(),
        &mut out,
    );
    out
}
