//! The developer identities: `dev@local.prism` (in `prism:admin`) and
//! `viewer@local.prism` (only in `prism:viewer`, so a namespace's group check can be tried
//! both ways), each with a random password, generated once and kept (0600) in the state
//! folder with its bcrypt hash, so Dex's config — and with it the container — stays the
//! same from one `up` to the next.

use std::path::{Path, PathBuf};

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::{Deserialize, Serialize};

use crate::settings::{ADMIN_GROUP, VIEWER_GROUP};
use crate::state::{self, StateError};

/// Dex refuses hashes cheaper than bcrypt's default cost.
pub const BCRYPT_COST: u32 = 10;

/// One user of the local password database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct User {
    pub email: String,
    pub username: String,
    /// Dex's `userID`, the token's `sub` is derived from it.
    pub user_id: String,
    pub password: String,
    /// bcrypt of `password`, as it goes into Dex's `staticPasswords`.
    pub password_hash: String,
    pub groups: Vec<String>,
}

/// Which of the two users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Who {
    /// dev@local.prism, in prism:admin.
    #[default]
    Dev,
    /// viewer@local.prism, in prism:viewer only.
    Viewer,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// The developer; its fields sit at the top of the file, as before the viewer existed.
    #[serde(flatten)]
    pub developer: User,
    /// Absent in files written before the viewer existed; `load_or_create` adds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    viewer: Option<User>,
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

impl User {
    /// A user `name@local.prism` in `group`, with a fresh 24-character password.
    fn generate(name: &str, group: &str) -> Result<User, IdentityError> {
        let password = random(24);
        Ok(User {
            email: format!("{name}@local.prism"),
            username: name.into(),
            user_id: format!("{name}-{}", random(12).to_lowercase()),
            password_hash: bcrypt::hash(&password, BCRYPT_COST)?,
            password,
            groups: vec![group.into()],
        })
    }
}

impl Identity {
    /// New identities: the developer and the viewer, and the proxy client's secret.
    pub fn generate() -> Result<Identity, IdentityError> {
        Ok(Identity {
            developer: User::generate("dev", ADMIN_GROUP)?,
            viewer: Some(User::generate("viewer", VIEWER_GROUP)?),
            proxy_client_secret: random(32),
        })
    }

    /// The viewer, if this identity file has one (every file `load_or_create` returns does).
    pub fn viewer(&self) -> Option<&User> {
        self.viewer.as_ref()
    }

    /// `who`, if this identity has that user.
    pub fn user(&self, who: Who) -> Option<&User> {
        match who {
            Who::Dev => Some(&self.developer),
            Who::Viewer => self.viewer(),
        }
    }

    /// Every user, as Dex's password database lists them.
    pub fn users(&self) -> impl Iterator<Item = &User> {
        std::iter::once(&self.developer).chain(self.viewer())
    }

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("identity.json")
    }

    /// The identity kept in `state_dir`, generated (and kept, 0600) on first use; a file
    /// from before the viewer existed gets one, and keeps the developer as it was.
    pub fn load_or_create(state_dir: &Path) -> Result<Identity, IdentityError> {
        let path = Identity::path(state_dir);
        let identity = match state::read_json::<Identity>(&path)? {
            Some(identity) if identity.viewer.is_some() => return Ok(identity),
            Some(older) => Identity {
                viewer: Some(User::generate("viewer", VIEWER_GROUP)?),
                ..older
            },
            None => Identity::generate()?,
        };
        state::ensure_private_dir(state_dir)?;
        state::write_private_json(&path, &identity)?;
        Ok(identity)
    }

    /// The kept identity, if `up` or `render` made one.
    pub fn load(state_dir: &Path) -> Result<Option<Identity>, IdentityError> {
        Ok(state::read_json(&Identity::path(state_dir))?)
    }
}
