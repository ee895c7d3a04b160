//! Writes a stack's config files (and, for `devstack render`, the equivalent compose
//! file) into a folder. `up` renders into the state folder and mounts from there.

use std::path::{Path, PathBuf};

use super::{Stack, compose};
use crate::state::{self, StateError};

/// The compose file's name in a rendered folder.
pub const COMPOSE_FILE: &str = "compose.yaml";

/// Writes every file of `stack` under `dir`; returns their paths.
pub fn write_files(stack: &Stack, dir: &Path) -> Result<Vec<PathBuf>, StateError> {
    let mut written = Vec::new();
    for file in &stack.files {
        let path = dir.join(&file.path);
        // Readable by the containers' users (Dex runs as uid 1001), which read it through
        // a file mount; its folder (`dex/`, holding a bcrypt hash and the proxy's client
        // secret) is the owner's alone, so no other local user can.
        state::write_file(&path, file.contents.as_bytes(), 0o644)?;
        if let Some(folder) = path.parent().filter(|p| *p != dir) {
            state::ensure_private_dir(folder)?;
        }
        written.push(path);
    }
    Ok(written)
}

/// Writes the files and `compose.yaml` (mounting them by relative path) under `dir`.
pub fn render(stack: &Stack, dir: &Path) -> Result<Vec<PathBuf>, StateError> {
    let mut written = write_files(stack, dir)?;
    let path = dir.join(COMPOSE_FILE);
    state::write_file(&path, compose::document(stack).as_bytes(), 0o644)?;
    written.push(path);
    Ok(written)
}
