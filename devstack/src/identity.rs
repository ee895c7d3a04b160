//! The developer identity: `dev@local.prism` with a random password, generated once and
//! kept (0600) in the state folder with its bcrypt hash, so Dex's config — and with it
//! the container — stays the same from one `up` to the next.

use std::path::{Path, PathBuf};

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

use crate::settings::ADMIN_GROUP;
use crate::state::{self, StateError};

/// Dex refuses hashes cheaper than bcrypt's default cost.
pub const BCRYPT_COST: u32 = 10;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    pub email: String,
    pub username: String,
    /// Dex's `userID`, the token's `sub` is derived from it.
    pub user_id: String,
    pub password: String,
    /// bcrypt of `password`, as it goes into Dex's `staticPasswords`.
    pub password_hash: String,
    pub groups: Vec<String>,
    /// Secret of the proxy's (confidential) Dex client.
    pub proxy_client_secret: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("hashing the developer password: {0}")]
    Hash(#[from] bcrypt::BcryptError),
}

fn random(len: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

impl Identity {
    /// A new developer identity with a fresh 24-character password.
    pub fn generate() -> Result<Identity, IdentityError> {
        let password = random(24);
        Ok(Identity {
            email: "dev@local.prism".into(),
            username: "dev".into(),
            user_id: format!("dev-{}", random(12).to_lowercase()),
            password_hash: bcrypt::hash(&password, BCRYPT_COST)?,
            password,
            groups: vec![ADMIN_GROUP.into()],
            proxy_client_secret: random(32),
        })
    }

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("identity.json")
    }

    /// The identity kept in `state_dir`, generated (and kept, 0600) on first use.
    pub fn load_or_create(state_dir: &Path) -> Result<Identity, IdentityError> {
        let path = Identity::path(state_dir);
        if let Some(identity) = state::read_json(&path)? {
            return Ok(identity);
        }
        state::ensure_private_dir(state_dir)?;
        let identity = Identity::generate()?;
        state::write_private_json(&path, &identity)?;
        Ok(identity)
    }

    /// The kept identity, if `up` or `render` made one.
    pub fn load(state_dir: &Path) -> Result<Option<Identity>, IdentityError> {
        Ok(state::read_json(&Identity::path(state_dir))?)
    }
}
