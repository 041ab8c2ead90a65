//! Sealed secrets in PostgreSQL: cluster secrets, named cloud credentials
//! and key rotation. Values are sealed (with the same key file and format
//! as the SQLite store) before they reach SQL and opened after, so no plain
//! secret is ever in a column.
//!
//! Writers that seal take a shared advisory lock for their transaction and
//! seal inside it; rotation re-seals under the exclusive one. So a rotation
//! waits for writers in flight (and re-seals what they stored), and a
//! writer after it reads the new key (see `crate::sealing`).

use async_trait::async_trait;
use deadpool_postgres::GenericClient;

use super::cluster::load_cluster;
use super::{commit, pg, write, PgStore};
use crate::credentials::{
    check_credentials, CredentialStore, CredentialsSummary, StoredCredentials,
};
use crate::error::{Error, Result};
use crate::sealing::{cluster_scope, PendingKey, Rotation, CREDENTIALS_SCOPE};
use crate::time::Timestamp;

/// Advisory lock key between sealing writers (shared) and key rotation
/// (exclusive): "vkube" and 2.
const SEALING_LOCK: i64 = 0x766b_7562_6500_0002;

/// Joins the sealing writers for the rest of the transaction.
async fn sealing(client: &impl GenericClient, action: &str) -> Result<()> {
    client
        .execute("SELECT pg_advisory_xact_lock_shared($1)", &[&SEALING_LOCK])
        .await
        .map_err(pg(action))?;
    Ok(())
}

async fn stored_secret(
    client: &impl GenericClient,
    cluster: &str,
    name: &str,
    locking: &str,
    action: &str,
) -> Result<Option<String>> {
    Ok(client
        .query_opt(
            &format!(
                "SELECT value FROM cluster_secrets WHERE cluster = $1 AND name = $2 {locking}"
            ),
            &[&cluster, &name],
        )
        .await
        .map_err(pg(action))?
        .map(|row| row.get(0)))
}

pub(super) async fn ensure_secret(
    store: &PgStore,
    cluster: &str,
    name: &str,
    value: &str,
) -> Result<String> {
    let action = format!("storing secret `{name}` of cluster `{cluster}`");
    let scope = cluster_scope(cluster);
    let mut client = store.client(&action).await?;
    let transaction = write(&mut client, &action).await?;
    sealing(&transaction, &action).await?;
    load_cluster(&transaction, cluster, "FOR KEY SHARE").await?;
    let sealed = store.sealer.seal(&scope, name, value)?;
    // A concurrent first writer makes this wait for its commit, then do
    // nothing; the read below sees its value.
    transaction
        .execute(
            "INSERT INTO cluster_secrets (cluster, name, value) VALUES ($1, $2, $3)
             ON CONFLICT (cluster, name) DO NOTHING",
            &[&cluster, &name, &sealed],
        )
        .await
        .map_err(pg(&action))?;
    let stored = stored_secret(&transaction, cluster, name, "", &action)
        .await?
        .ok_or_else(|| Error::Corrupt {
            what: format!("secret `{name}` of cluster `{cluster}`"),
            problem: "vanished right after it was stored".into(),
        })?;
    commit(transaction, &action).await?;
    store.sealer.open(&scope, name, &stored)
}

pub(super) async fn secret(store: &PgStore, cluster: &str, name: &str) -> Result<Option<String>> {
    let action = format!("reading secret `{name}` of cluster `{cluster}`");
    let client = store.client(&action).await?;
    stored_secret(&client, cluster, name, "", &action)
        .await?
        .map(|value| store.sealer.open(&cluster_scope(cluster), name, &value))
        .transpose()
}

pub(super) async fn replace_secret(
    store: &PgStore,
    cluster: &str,
    name: &str,
    expected: &str,
    value: &str,
) -> Result<String> {
    let action = format!("replacing secret `{name}` of cluster `{cluster}`");
    let scope = cluster_scope(cluster);
    let mut client = store.client(&action).await?;
    let transaction = write(&mut client, &action).await?;
    sealing(&transaction, &action).await?;
    // Replacers of one cluster's secrets queue here: compare-and-set.
    load_cluster(&transaction, cluster, "FOR NO KEY UPDATE").await?;
    let current = stored_secret(&transaction, cluster, name, "", &action)
        .await?
        .map(|stored| store.sealer.open(&scope, name, &stored))
        .transpose()?;
    if let Some(current) = current.filter(|current| current != expected) {
        return Ok(current);
    }
    let sealed = store.sealer.seal(&scope, name, value)?;
    transaction
        .execute(
            "INSERT INTO cluster_secrets (cluster, name, value) VALUES ($1, $2, $3)
             ON CONFLICT (cluster, name) DO UPDATE SET value = EXCLUDED.value",
            &[&cluster, &name, &sealed],
        )
        .await
        .map_err(pg(&action))?;
    commit(transaction, &action).await?;
    Ok(value.to_owned())
}

/// Seals values stored in plain text (written around vkube, e.g. by a
/// restore from an old SQLite dump). Runs at connect; does nothing, and
/// creates no key, when every value is sealed.
pub(super) async fn seal_plain_rows(store: &PgStore) -> Result<()> {
    let action = "sealing secrets stored in plain text";
    let mut client = store.client(action).await?;
    let plain: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM cluster_secrets WHERE value NOT LIKE 'sealed:%'",
            &[],
        )
        .await
        .map_err(pg(action))?
        .get(0);
    if plain == 0 {
        return Ok(());
    }
    let transaction = write(&mut client, action).await?;
    sealing(&transaction, action).await?;
    for (cluster, name, value) in secret_rows(&transaction, action).await? {
        if !value.starts_with("sealed:") {
            let sealed = store.sealer.seal(&cluster_scope(&cluster), &name, &value)?;
            update_secret_row(&transaction, &cluster, &name, &sealed, action).await?;
        }
    }
    commit(transaction, action).await
}

/// Every cluster secret, locked for re-sealing.
async fn secret_rows(
    client: &impl GenericClient,
    action: &str,
) -> Result<Vec<(String, String, String)>> {
    Ok(client
        .query(
            "SELECT cluster, name, value FROM cluster_secrets ORDER BY cluster, name FOR UPDATE",
            &[],
        )
        .await
        .map_err(pg(action))?
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect())
}

async fn update_secret_row(
    client: &impl GenericClient,
    cluster: &str,
    name: &str,
    sealed: &str,
    action: &str,
) -> Result<()> {
    client
        .execute(
            "UPDATE cluster_secrets SET value = $3 WHERE cluster = $1 AND name = $2",
            &[&cluster, &name, &sealed],
        )
        .await
        .map_err(pg(action))?;
    Ok(())
}

/// Re-seals every secret with `pending`, inside the caller's transaction.
async fn reseal_all(
    store: &PgStore,
    client: &impl GenericClient,
    pending: &PendingKey,
    action: &str,
) -> Result<usize> {
    let mut count = 0;
    for (cluster, name, value) in secret_rows(client, action).await? {
        let scope = cluster_scope(&cluster);
        let plain = store.sealer.open(&scope, &name, &value)?;
        let sealed = pending.seal(&scope, &name, &plain)?;
        update_secret_row(client, &cluster, &name, &sealed, action).await?;
        count += 1;
    }
    let credentials: Vec<(String, String)> = client
        .query(
            "SELECT name, password FROM cloud_credentials ORDER BY name FOR UPDATE",
            &[],
        )
        .await
        .map_err(pg(action))?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for (name, password) in credentials {
        let plain = store.sealer.open(CREDENTIALS_SCOPE, &name, &password)?;
        let sealed = pending.seal(CREDENTIALS_SCOPE, &name, &plain)?;
        client
            .execute(
                "UPDATE cloud_credentials SET password = $2 WHERE name = $1",
                &[&name, &sealed],
            )
            .await
            .map_err(pg(action))?;
        count += 1;
    }
    Ok(count)
}

#[async_trait]
impl CredentialStore for PgStore {
    async fn set_credentials(
        &self,
        name: &str,
        username: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<bool> {
        check_credentials(name, username, password)?;
        let action = format!("storing cloud credentials `{name}`");
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        sealing(&transaction, &action).await?;
        let stored = transaction
            .query_opt(
                "SELECT username, password FROM cloud_credentials WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .await
            .map_err(pg(&action))?;
        if let Some(row) = stored {
            let (stored_user, stored_password): (String, String) = (row.get(0), row.get(1));
            let same_password = self
                .sealer
                .open(CREDENTIALS_SCOPE, name, &stored_password)?
                == password;
            if stored_user == username && same_password {
                return Ok(false);
            }
        }
        let sealed = self.sealer.seal(CREDENTIALS_SCOPE, name, password)?;
        transaction
            .execute(
                "INSERT INTO cloud_credentials (name, username, password, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (name) DO UPDATE SET username = EXCLUDED.username,
                     password = EXCLUDED.password, updated_at = EXCLUDED.updated_at",
                &[&name, &username, &sealed, &now.unix_seconds()],
            )
            .await
            .map_err(pg(&action))?;
        commit(transaction, &action).await?;
        Ok(true)
    }

    async fn credentials(&self, name: &str) -> Result<StoredCredentials> {
        let action = format!("reading cloud credentials `{name}`");
        let client = self.client(&action).await?;
        let row = client
            .query_opt(
                "SELECT username, password, created_at, updated_at
                 FROM cloud_credentials WHERE name = $1",
                &[&name],
            )
            .await
            .map_err(pg(&action))?
            .ok_or_else(|| Error::CredentialsNotFound {
                name: name.to_owned(),
            })?;
        Ok(StoredCredentials {
            name: name.to_owned(),
            username: row.get(0),
            password: self.sealer.open(CREDENTIALS_SCOPE, name, row.get(1))?,
            created_at: Timestamp::from_unix_seconds(row.get(2)),
            updated_at: Timestamp::from_unix_seconds(row.get(3)),
        })
    }

    async fn list_credentials(&self) -> Result<Vec<CredentialsSummary>> {
        let action = "listing cloud credentials";
        let client = self.client(action).await?;
        Ok(client
            .query(
                r#"SELECT name, username, updated_at FROM cloud_credentials ORDER BY name COLLATE "C""#,
                &[],
            )
            .await
            .map_err(pg(action))?
            .iter()
            .map(|row| CredentialsSummary {
                name: row.get(0),
                username: row.get(1),
                updated_at: row.get(2),
            })
            .collect())
    }

    async fn delete_credentials(&self, name: &str) -> Result<bool> {
        let action = format!("deleting cloud credentials `{name}`");
        let client = self.client(&action).await?;
        let removed = client
            .execute("DELETE FROM cloud_credentials WHERE name = $1", &[&name])
            .await
            .map_err(pg(&action))?;
        Ok(removed > 0)
    }

    async fn rotate_key(&self) -> Result<Rotation> {
        let action = "re-sealing secrets under a new key";
        let pending = self.sealer.begin_rotation()?;
        let mut client = self.client(action).await?;
        let transaction = write(&mut client, action).await?;
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&SEALING_LOCK])
            .await
            .map_err(pg("waiting for writers of secrets"))?;
        let resealed = reseal_all(self, &transaction, &pending, action).await?;
        commit(transaction, action).await?;
        self.sealer.finish_rotation(&pending, resealed)
    }
}
