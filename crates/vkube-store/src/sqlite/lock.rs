//! Apply locks in SQLite: the [`ApplyLocks`] implementation.
//!
//! Each operation reads and writes the lock row inside one `BEGIN
//! IMMEDIATE` transaction, which holds the file's write lock, so two
//! processes can never both see the lock free.

use std::time::Duration;

use rusqlite::{params, OptionalExtension, Transaction};

use super::{check_name, database, SqliteStore};
use crate::error::{Error, Result};
use crate::lock::{ApplyLock, ApplyLocks};
use crate::time::Timestamp;

/// An `apply_locks` row.
struct LockRow {
    holder: Option<String>,
    generation: u64,
    acquired_at: Timestamp,
    expires_at: Timestamp,
}

fn load_lock(
    transaction: &Transaction<'_>,
    cluster: &str,
    action: &str,
) -> Result<Option<LockRow>> {
    transaction
        .query_row(
            "SELECT holder, generation, acquired_at, expires_at FROM apply_locks WHERE cluster = ?1",
            [cluster],
            |row| {
                Ok(LockRow {
                    holder: row.get(0)?,
                    generation: row.get(1)?,
                    acquired_at: Timestamp::from_unix_seconds(row.get(2)?),
                    expires_at: Timestamp::from_unix_seconds(row.get(3)?),
                })
            },
        )
        .optional()
        .map_err(database(action))
}

fn check_ttl(ttl: Duration) -> Result<()> {
    if ttl.as_secs() == 0 {
        return Err(Error::Invalid {
            field: "apply lock",
            problem: "time to live must be at least one second".into(),
        });
    }
    Ok(())
}

impl ApplyLocks for SqliteStore {
    fn acquire_apply_lock(
        &self,
        cluster: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock> {
        check_name("cluster", cluster)?;
        check_name("holder", holder)?;
        check_ttl(ttl)?;
        let action = format!("taking the apply lock of cluster `{cluster}`");
        let expires_at = now.saturating_add(ttl);
        self.write(&action, |transaction| {
            let lock = |generation, acquired_at, taken_over_from| ApplyLock {
                cluster: cluster.to_owned(),
                holder: holder.to_owned(),
                generation,
                acquired_at,
                expires_at,
                taken_over_from,
            };
            let Some(row) = load_lock(transaction, cluster, &action)? else {
                transaction
                    .execute(
                        "INSERT INTO apply_locks (cluster, holder, generation, acquired_at, expires_at)
                         VALUES (?1, ?2, 1, ?3, ?4)",
                        params![cluster, holder, now.unix_seconds(), expires_at.unix_seconds()],
                    )
                    .map_err(database(&action))?;
                return Ok(lock(1, now, None));
            };
            let (generation, acquired_at, taken_over_from) = match row.holder {
                // Ours already: a retry, or a renewal through acquire.
                Some(current) if current == holder => (row.generation, row.acquired_at, None),
                Some(current) if row.expires_at > now => {
                    return Err(Error::Locked {
                        cluster: cluster.to_owned(),
                        holder: current,
                        expires_in: row.expires_at.duration_since(now),
                    })
                }
                // Expired: its holder stopped renewing (crashed or hung).
                Some(current) => (row.generation + 1, now, Some(current)),
                None => (row.generation + 1, now, None),
            };
            transaction
                .execute(
                    "UPDATE apply_locks SET holder = ?2, generation = ?3, acquired_at = ?4, expires_at = ?5
                     WHERE cluster = ?1",
                    params![
                        cluster,
                        holder,
                        generation,
                        acquired_at.unix_seconds(),
                        expires_at.unix_seconds()
                    ],
                )
                .map_err(database(&action))?;
            Ok(lock(generation, acquired_at, taken_over_from))
        })
    }

    fn renew_apply_lock(
        &self,
        lock: &ApplyLock,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock> {
        check_ttl(ttl)?;
        let action = format!("renewing the apply lock of cluster `{}`", lock.cluster);
        let expires_at = now.saturating_add(ttl);
        self.write(&action, |transaction| {
            let changed = transaction
                .execute(
                    "UPDATE apply_locks SET expires_at = ?4
                     WHERE cluster = ?1 AND holder = ?2 AND generation = ?3",
                    params![
                        lock.cluster,
                        lock.holder,
                        lock.generation,
                        expires_at.unix_seconds()
                    ],
                )
                .map_err(database(&action))?;
            if changed == 0 {
                let now_held_by = load_lock(transaction, &lock.cluster, &action)?
                    .and_then(|row| row.holder)
                    .filter(|holder| *holder != lock.holder);
                return Err(Error::LockLost {
                    cluster: lock.cluster.clone(),
                    holder: lock.holder.clone(),
                    now_held_by,
                });
            }
            Ok(ApplyLock {
                expires_at,
                ..lock.clone()
            })
        })
    }

    fn release_apply_lock(&self, lock: &ApplyLock) -> Result<()> {
        let action = format!("releasing the apply lock of cluster `{}`", lock.cluster);
        self.write(&action, |transaction| {
            // The row stays (holder NULL) so the generation keeps counting.
            transaction
                .execute(
                    "UPDATE apply_locks SET holder = NULL
                     WHERE cluster = ?1 AND holder = ?2 AND generation = ?3",
                    params![lock.cluster, lock.holder, lock.generation],
                )
                .map_err(database(&action))?;
            Ok(())
        })
    }

    fn expire_apply_lock(&self, cluster: &str, holder: &str) -> Result<bool> {
        let action = format!("expiring the apply lock of cluster `{cluster}`");
        self.write(&action, |transaction| {
            let changed = transaction
                .execute(
                    "UPDATE apply_locks SET expires_at = 0 WHERE cluster = ?1 AND holder = ?2",
                    params![cluster, holder],
                )
                .map_err(database(&action))?;
            Ok(changed == 1)
        })
    }

    fn apply_lock(&self, cluster: &str) -> Result<Option<ApplyLock>> {
        let action = format!("reading the apply lock of cluster `{cluster}`");
        self.read(&action, |transaction| {
            Ok(load_lock(transaction, cluster, &action)?.and_then(|row| {
                Some(ApplyLock {
                    cluster: cluster.to_owned(),
                    holder: row.holder?,
                    generation: row.generation,
                    acquired_at: row.acquired_at,
                    expires_at: row.expires_at,
                    taken_over_from: None,
                })
            }))
        })
    }
}
