//! Sealed secrets in SQLite: cluster secrets, named cloud credentials and
//! key rotation. Values are sealed before they reach SQL and opened after,
//! so no plain secret is ever in a column (see `crate::sealing`).

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction};

use super::cluster::load_cluster;
use super::{database, Inner, SqliteStore};
use crate::credentials::{
    check_credentials, CredentialStore, CredentialsSummary, StoredCredentials,
};
use crate::error::{Error, Result};
use crate::sealing::{cluster_scope, PendingKey, Rotation, CREDENTIALS_SCOPE};
use crate::time::Timestamp;

fn stored_secret(
    transaction: &Transaction<'_>,
    cluster: &str,
    name: &str,
    action: &str,
) -> Result<Option<String>> {
    transaction
        .query_row(
            "SELECT value FROM cluster_secrets WHERE cluster = ?1 AND name = ?2",
            params![cluster, name],
            |row| row.get::<_, String>(0),
        )
        .optional()
        .map_err(database(action))
}

impl Inner {
    pub(super) fn ensure_secret(&self, cluster: &str, name: &str, value: &str) -> Result<String> {
        let store = self;
        let action = format!("storing secret `{name}` of cluster `{cluster}`");
        let scope = cluster_scope(cluster);
        let stored = store.write(&action, |transaction| {
            load_cluster(transaction, cluster)?;
            let sealed = store.sealer.seal(&scope, name, value)?;
            transaction
                .execute(
                    "INSERT INTO cluster_secrets (cluster, name, value) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (cluster, name) DO NOTHING",
                    params![cluster, name, sealed],
                )
                .map_err(database(&action))?;
            stored_secret(transaction, cluster, name, &action)?.ok_or_else(|| Error::Corrupt {
                what: format!("secret `{name}` of cluster `{cluster}`"),
                problem: "vanished right after it was stored".into(),
            })
        })?;
        store.sealer.open(&scope, name, &stored)
    }

    pub(super) fn secret(&self, cluster: &str, name: &str) -> Result<Option<String>> {
        let store = self;
        let action = format!("reading secret `{name}` of cluster `{cluster}`");
        let stored = store.read(&action, |transaction| {
            stored_secret(transaction, cluster, name, &action)
        })?;
        stored
            .map(|value| store.sealer.open(&cluster_scope(cluster), name, &value))
            .transpose()
    }

    pub(super) fn replace_secret(
        &self,
        cluster: &str,
        name: &str,
        expected: &str,
        value: &str,
    ) -> Result<String> {
        let store = self;
        let action = format!("replacing secret `{name}` of cluster `{cluster}`");
        let scope = cluster_scope(cluster);
        store.write(&action, |transaction| {
            load_cluster(transaction, cluster)?;
            let current = stored_secret(transaction, cluster, name, &action)?
                .map(|stored| store.sealer.open(&scope, name, &stored))
                .transpose()?;
            match current {
                Some(current) if current != expected => Ok(current),
                _ => {
                    let sealed = store.sealer.seal(&scope, name, value)?;
                    transaction
                    .execute(
                        "INSERT INTO cluster_secrets (cluster, name, value) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (cluster, name) DO UPDATE SET value = excluded.value",
                        params![cluster, name, sealed],
                    )
                    .map_err(database(&action))?;
                    Ok(value.to_owned())
                }
            }
        })
    }
}

/// Seals values written before sealing existed (schema 3 and older). Runs
/// at open; does nothing, and creates no key, when every value is sealed.
pub(super) fn seal_plain_rows(store: &Inner) -> Result<()> {
    let action = "sealing secrets stored in plain text";
    let plain: i64 = store.read(action, |transaction| {
        transaction
            .query_row(
                "SELECT COUNT(*) FROM cluster_secrets WHERE value NOT LIKE 'sealed:%'",
                [],
                |row| row.get(0),
            )
            .map_err(database(action))
    })?;
    if plain == 0 {
        return Ok(());
    }
    store.write(action, |transaction| {
        for (cluster, name, value) in secret_rows(transaction, action)? {
            if !value.starts_with("sealed:") {
                let sealed = store.sealer.seal(&cluster_scope(&cluster), &name, &value)?;
                update_secret_row(transaction, &cluster, &name, &sealed, action)?;
            }
        }
        Ok(())
    })
}

fn secret_rows(
    transaction: &Transaction<'_>,
    action: &str,
) -> Result<Vec<(String, String, String)>> {
    let mut statement = transaction
        .prepare("SELECT cluster, name, value FROM cluster_secrets ORDER BY cluster, name")
        .map_err(database(action))?;
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .map_err(database(action))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(database(action));
    rows
}

fn update_secret_row(
    transaction: &Transaction<'_>,
    cluster: &str,
    name: &str,
    sealed: &str,
    action: &str,
) -> Result<()> {
    transaction
        .execute(
            "UPDATE cluster_secrets SET value = ?3 WHERE cluster = ?1 AND name = ?2",
            params![cluster, name, sealed],
        )
        .map_err(database(action))?;
    Ok(())
}

fn credentials_row(
    transaction: &Transaction<'_>,
    name: &str,
    action: &str,
) -> Result<Option<(String, String, i64, i64)>> {
    transaction
        .query_row(
            "SELECT username, password, created_at, updated_at FROM cloud_credentials WHERE name = ?1",
            params![name],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .optional()
        .map_err(database(action))
}

/// Re-seals every secret with `pending`, inside one transaction.
fn reseal_all(
    store: &Inner,
    transaction: &Transaction<'_>,
    pending: &PendingKey,
    action: &str,
) -> Result<usize> {
    let mut count = 0;
    for (cluster, name, value) in secret_rows(transaction, action)? {
        let scope = cluster_scope(&cluster);
        let plain = store.sealer.open(&scope, &name, &value)?;
        update_secret_row(
            transaction,
            &cluster,
            &name,
            &pending.seal(&scope, &name, &plain)?,
            action,
        )?;
        count += 1;
    }
    let names: Vec<(String, String)> = {
        let mut statement = transaction
            .prepare("SELECT name, password FROM cloud_credentials ORDER BY name")
            .map_err(database(action))?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .map_err(database(action))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(database(action))?;
        rows
    };
    for (name, password) in names {
        let plain = store.sealer.open(CREDENTIALS_SCOPE, &name, &password)?;
        transaction
            .execute(
                "UPDATE cloud_credentials SET password = ?2 WHERE name = ?1",
                params![name, pending.seal(CREDENTIALS_SCOPE, &name, &plain)?],
            )
            .map_err(database(action))?;
        count += 1;
    }
    Ok(count)
}

impl Inner {
    fn set_credentials(
        &self,
        name: &str,
        username: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<bool> {
        check_credentials(name, username, password)?;
        let action = format!("storing cloud credentials `{name}`");
        self.write(&action, |transaction| {
            if let Some((stored_user, stored_password, _, _)) = credentials_row(transaction, name, &action)? {
                let same_password = self.sealer.open(CREDENTIALS_SCOPE, name, &stored_password)? == password;
                if stored_user == username && same_password {
                    return Ok(false);
                }
            }
            let sealed = self.sealer.seal(CREDENTIALS_SCOPE, name, password)?;
            transaction
                .execute(
                    "INSERT INTO cloud_credentials (name, username, password, created_at, updated_at) \
                     VALUES (?1, ?2, ?3, ?4, ?4) \
                     ON CONFLICT (name) DO UPDATE SET username = excluded.username, \
                     password = excluded.password, updated_at = excluded.updated_at",
                    params![name, username, sealed, now.unix_seconds()],
                )
                .map_err(database(&action))?;
            Ok(true)
        })
    }

    fn credentials(&self, name: &str) -> Result<StoredCredentials> {
        let action = format!("reading cloud credentials `{name}`");
        let row = self.read(&action, |transaction| {
            credentials_row(transaction, name, &action)
        })?;
        let (username, password, created_at, updated_at) =
            row.ok_or_else(|| Error::CredentialsNotFound {
                name: name.to_owned(),
            })?;
        Ok(StoredCredentials {
            name: name.to_owned(),
            username,
            password: self.sealer.open(CREDENTIALS_SCOPE, name, &password)?,
            created_at: Timestamp::from_unix_seconds(created_at),
            updated_at: Timestamp::from_unix_seconds(updated_at),
        })
    }

    fn list_credentials(&self) -> Result<Vec<CredentialsSummary>> {
        let action = "listing cloud credentials";
        self.read(action, |transaction| {
            let mut statement = transaction
                .prepare("SELECT name, username, updated_at FROM cloud_credentials ORDER BY name")
                .map_err(database(action))?;
            let rows = statement
                .query_map([], |row| {
                    Ok(CredentialsSummary {
                        name: row.get(0)?,
                        username: row.get(1)?,
                        updated_at: row.get(2)?,
                    })
                })
                .map_err(database(action))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(database(action));
            rows
        })
    }

    fn delete_credentials(&self, name: &str) -> Result<bool> {
        let action = format!("deleting cloud credentials `{name}`");
        self.write(&action, |transaction| {
            let removed = transaction
                .execute(
                    "DELETE FROM cloud_credentials WHERE name = ?1",
                    params![name],
                )
                .map_err(database(&action))?;
            Ok(removed > 0)
        })
    }

    fn rotate_key(&self) -> Result<Rotation> {
        let action = "re-sealing secrets under a new key";
        let pending = self.sealer.begin_rotation()?;
        let resealed = self.write(action, |transaction| {
            reseal_all(self, transaction, &pending, action)
        })?;
        self.sealer.finish_rotation(&pending, resealed)
    }
}

#[async_trait]
impl CredentialStore for SqliteStore {
    async fn set_credentials(
        &self,
        name: &str,
        username: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let (name, username, password) =
            (name.to_owned(), username.to_owned(), password.to_owned());
        self.run("storing cloud credentials", move |store| {
            store.set_credentials(&name, &username, &password, now)
        })
        .await
    }

    async fn credentials(&self, name: &str) -> Result<StoredCredentials> {
        let name = name.to_owned();
        self.run("reading cloud credentials", move |store| {
            store.credentials(&name)
        })
        .await
    }

    async fn list_credentials(&self) -> Result<Vec<CredentialsSummary>> {
        self.run("listing cloud credentials", |store| {
            store.list_credentials()
        })
        .await
    }

    async fn delete_credentials(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.run("deleting cloud credentials", move |store| {
            store.delete_credentials(&name)
        })
        .await
    }

    async fn rotate_key(&self) -> Result<Rotation> {
        self.run("rotating the state key", |store| store.rotate_key())
            .await
    }
}
