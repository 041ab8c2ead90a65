//! Sealed secrets in memory: cluster secrets, named cloud credentials and
//! key rotation. The state holds only sealed values, as the SQL stores'
//! columns do (see `crate::sealing`), so rotation and rows that do not
//! open behave the same.

use async_trait::async_trait;

use super::state::{CredentialsRow, State};
use super::{MemoryStore, Operation};
use crate::credentials::{
    check_credentials, CredentialStore, CredentialsSummary, StoredCredentials,
};
use crate::error::{Error, Result};
use crate::sealing::{cluster_scope, PendingKey, Rotation, Sealer, CREDENTIALS_SCOPE};
use crate::time::Timestamp;

/// The prefix every sealed value starts with; anything else was written in
/// plain text around the store.
const SEALED: &str = "sealed:";

pub(super) fn ensure_secret(
    state: &mut State,
    sealer: &Sealer,
    cluster: &str,
    name: &str,
    value: &str,
) -> Result<String> {
    let scope = cluster_scope(cluster);
    let entry = state.cluster_mut(cluster)?;
    // Sealed before looking, as the SQL stores do inside their insert.
    let sealed = sealer.seal(&scope, name, value)?;
    let stored = entry.secrets.entry(name.to_owned()).or_insert(sealed);
    sealer.open(&scope, name, stored)
}

pub(super) fn secret(
    state: &State,
    sealer: &Sealer,
    cluster: &str,
    name: &str,
) -> Result<Option<String>> {
    state
        .clusters
        .get(cluster)
        .and_then(|entry| entry.secrets.get(name))
        .map(|stored| sealer.open(&cluster_scope(cluster), name, stored))
        .transpose()
}

pub(super) fn replace_secret(
    state: &mut State,
    sealer: &Sealer,
    cluster: &str,
    name: &str,
    expected: &str,
    value: &str,
) -> Result<String> {
    let scope = cluster_scope(cluster);
    let entry = state.cluster_mut(cluster)?;
    let current = entry
        .secrets
        .get(name)
        .map(|stored| sealer.open(&scope, name, stored))
        .transpose()?;
    if let Some(current) = current.filter(|current| current != expected) {
        return Ok(current);
    }
    let sealed = sealer.seal(&scope, name, value)?;
    entry.secrets.insert(name.to_owned(), sealed);
    Ok(value.to_owned())
}

/// Seals cluster secrets found in plain text (written around the store,
/// see [`MemoryStore::write_raw_secret`]), as the SQL stores do when
/// opened. Creates no key when every value is sealed.
pub(super) fn seal_plain_values(state: &mut State, sealer: &Sealer) -> Result<()> {
    let mut sealed = Vec::new();
    for (cluster, entry) in &state.clusters {
        for (name, value) in &entry.secrets {
            if !value.starts_with(SEALED) {
                let value = sealer.seal(&cluster_scope(cluster), name, value)?;
                sealed.push((cluster.clone(), name.clone(), value));
            }
        }
    }
    store_sealed(state, sealed);
    Ok(())
}

/// Writes re-sealed cluster secrets `(cluster, name, value)` back.
fn store_sealed(state: &mut State, values: Vec<(String, String, String)>) {
    for (cluster, name, value) in values {
        if let Some(entry) = state.clusters.get_mut(&cluster) {
            entry.secrets.insert(name, value);
        }
    }
}

/// Re-seals every secret with `pending`: all values are opened and sealed
/// anew before any is replaced, so a value that does not open changes
/// nothing. Returns how many were re-sealed.
fn reseal_all(state: &mut State, sealer: &Sealer, pending: &PendingKey) -> Result<usize> {
    let mut secrets = Vec::new();
    for (cluster, entry) in &state.clusters {
        let scope = cluster_scope(cluster);
        for (name, value) in &entry.secrets {
            let plain = sealer.open(&scope, name, value)?;
            let value = pending.seal(&scope, name, &plain)?;
            secrets.push((cluster.clone(), name.clone(), value));
        }
    }
    let mut passwords = Vec::new();
    for (name, row) in &state.credentials {
        let plain = sealer.open(CREDENTIALS_SCOPE, name, &row.sealed_password)?;
        passwords.push((name.clone(), pending.seal(CREDENTIALS_SCOPE, name, &plain)?));
    }
    let count = secrets.len() + passwords.len();
    store_sealed(state, secrets);
    for (name, sealed) in passwords {
        if let Some(row) = state.credentials.get_mut(&name) {
            row.sealed_password = sealed;
        }
    }
    Ok(count)
}

impl State {
    fn set_credentials(
        &mut self,
        sealer: &Sealer,
        name: &str,
        username: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<bool> {
        check_credentials(name, username, password)?;
        let existing = self.credentials.get(name);
        if let Some(row) = existing {
            let same_password =
                sealer.open(CREDENTIALS_SCOPE, name, &row.sealed_password)? == password;
            if row.username == username && same_password {
                return Ok(false);
            }
        }
        let row = CredentialsRow {
            username: username.to_owned(),
            sealed_password: sealer.seal(CREDENTIALS_SCOPE, name, password)?,
            created_at: existing.map_or(now, |row| row.created_at),
            updated_at: now,
        };
        self.credentials.insert(name.to_owned(), row);
        Ok(true)
    }

    fn credentials(&self, sealer: &Sealer, name: &str) -> Result<StoredCredentials> {
        let row = self
            .credentials
            .get(name)
            .ok_or_else(|| Error::CredentialsNotFound {
                name: name.to_owned(),
            })?;
        Ok(StoredCredentials {
            name: name.to_owned(),
            username: row.username.clone(),
            password: sealer.open(CREDENTIALS_SCOPE, name, &row.sealed_password)?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    fn rotate_key(&mut self, sealer: &Sealer) -> Result<Rotation> {
        let pending = sealer.begin_rotation()?;
        let resealed = reseal_all(self, sealer, &pending)?;
        sealer.finish_rotation(&pending, resealed)
    }
}

#[async_trait]
impl CredentialStore for MemoryStore {
    async fn set_credentials(
        &self,
        name: &str,
        username: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<bool> {
        self.write(Operation::SetCredentials, |state, sealer| {
            state.set_credentials(sealer, name, username, password, now)
        })
    }

    async fn credentials(&self, name: &str) -> Result<StoredCredentials> {
        self.read(Operation::Credentials, |state, sealer| {
            state.credentials(sealer, name)
        })
    }

    async fn list_credentials(&self) -> Result<Vec<CredentialsSummary>> {
        self.read(Operation::ListCredentials, |state, _| {
            Ok(state
                .credentials
                .iter()
                .map(|(name, row)| CredentialsSummary {
                    name: name.clone(),
                    username: row.username.clone(),
                    updated_at: row.updated_at.unix_seconds(),
                })
                .collect())
        })
    }

    async fn delete_credentials(&self, name: &str) -> Result<bool> {
        self.write(Operation::DeleteCredentials, |state, _| {
            Ok(state.credentials.remove(name).is_some())
        })
    }

    async fn rotate_key(&self) -> Result<Rotation> {
        self.write(Operation::RotateKey, |state, sealer| {
            state.rotate_key(sealer)
        })
    }
}
