//! Which image version last ran on each volume, so an `up` with newer pinned images does
//! not hand an older version's data to a server (or migrator) that then fails deep
//! inside; it stops first and says what to do. Docker volume labels cannot change after
//! creation, so the record lives in the state folder, keyed by the volume's name and its
//! creation time (a volume removed and made again is a new volume).

use std::collections::BTreeMap;

use super::{Engine, EngineError, not_found};
use crate::stack::{Service, Stack};

/// One volume: when Docker created it, and the image of the service that last used it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeRecord {
    pub created: String,
    pub image: String,
}

/// Volume name (with the project prefix) to its record.
pub type VolumeRecords = BTreeMap<String, VolumeRecord>;

/// A volume written by another image version than the one about to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionChange {
    pub volume: String,
    pub service: String,
    pub was: String,
    pub now: String,
}

impl std::fmt::Display for VersionChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "volume {} holds data of {} (service {}), and this devstack runs {}",
            self.volume, self.was, self.service, self.now
        )
    }
}

impl Engine {
    /// The stack's volumes that exist, with their creation times.
    async fn existing_volumes(&self, stack: &Stack) -> Result<BTreeMap<String, String>, EngineError> {
        let mut found = BTreeMap::new();
        for volume in stack.volumes() {
            let name = stack.volume_name(&volume);
            match self.docker.inspect_volume(&name).await {
                Ok(v) => {
                    found.insert(name, v.created_at.map(|t| t.to_string()).unwrap_or_default());
                }
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(EngineError::docker(format!("inspect volume {name}"))(e)),
            }
        }
        Ok(found)
    }

    /// Existing volumes whose record names another image than the one using them now.
    /// A volume with no record (made before records were kept) is not judged.
    pub(crate) async fn version_changes(
        &self,
        stack: &Stack,
        records: &VolumeRecords,
    ) -> Result<Vec<VersionChange>, EngineError> {
        let existing = self.existing_volumes(stack).await?;
        let mut changes = Vec::new();
        for (name, service) in owners(stack) {
            let (Some(created), Some(record)) = (existing.get(&name), records.get(&name)) else {
                continue;
            };
            if &record.created == created && record.image != service.image {
                changes.push(VersionChange {
                    volume: name,
                    service: service.name.clone(),
                    was: record.image.clone(),
                    now: service.image.clone(),
                });
            }
        }
        Ok(changes)
    }

    /// `records` updated with every volume of `stack` as it is now.
    pub(crate) async fn record_volumes(
        &self,
        stack: &Stack,
        mut records: VolumeRecords,
    ) -> Result<VolumeRecords, EngineError> {
        let existing = self.existing_volumes(stack).await?;
        for (name, service) in owners(stack) {
            if let Some(created) = existing.get(&name) {
                let record = VolumeRecord {
                    created: created.clone(),
                    image: service.image.clone(),
                };
                records.insert(name, record);
            }
        }
        Ok(records)
    }
}

/// Each volume (its full name) with the service whose image it is recorded by: the first
/// in the stack that mounts it, so a volume two services share (ClickHouse and its init
/// one-shot) is judged the same way it was recorded.
fn owners(stack: &Stack) -> BTreeMap<String, &Service> {
    let mut owners = BTreeMap::new();
    for service in &stack.services {
        for mount in &service.volumes {
            owners.entry(stack.volume_name(&mount.volume)).or_insert(service);
        }
    }
    owners
}
