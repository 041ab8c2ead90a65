//! Apply locks in SQLite: the [`ApplyLocks`] implementation, and the fence
//! check of every fenced write.
//!
//! Each operation reads and writes the lock row inside one `BEGIN
//! IMMEDIATE` transaction, which holds the file's write lock, so two
//! processes can never both see the lock free, and no takeover can slip
//! between a fenced write's check and its commit.

use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, OptionalExtension, Transaction};

use super::{database, Inner, SqliteStore};
use crate::error::Result;
use crate::lock::{ApplyLock, ApplyLocks, Fence};
use crate::rules::{acquisition, check_fence, check_name, check_ttl, lock_lost, LockRow};
use crate::time::Timestamp;

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

/// `LockLost` unless `fence` still holds its cluster's lock; call first in
/// a fenced write's transaction.
pub(super) fn fenced(transaction: &Transaction<'_>, fence: &Fence, action: &str) -> Result<()> {
    check_fence(fence, load_lock(transaction, fence.cluster(), action)?)
}

impl Inner {
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
            let row = load_lock(transaction, cluster, &action)?;
            let fresh = row.is_none();
            let lock = acquisition(row, cluster, holder, now, expires_at)?;
            let values = params![
                cluster,
                holder,
                lock.generation,
                lock.acquired_at.unix_seconds(),
                expires_at.unix_seconds()
            ];
            let sql = if fresh {
                "INSERT INTO apply_locks (cluster, holder, generation, acquired_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)"
            } else {
                "UPDATE apply_locks SET holder = ?2, generation = ?3, acquired_at = ?4, expires_at = ?5
                 WHERE cluster = ?1"
            };
            transaction
                .execute(sql, values)
                .map_err(database(&action))?;
            Ok(lock)
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
                let row = load_lock(transaction, &lock.cluster, &action)?;
                return Err(lock_lost(&lock.cluster, &lock.holder, row));
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
            Ok(load_lock(transaction, cluster, &action)?.and_then(|row| row.into_lock(cluster)))
        })
    }
}

#[async_trait]
impl ApplyLocks for SqliteStore {
    async fn acquire_apply_lock(
        &self,
        cluster: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock> {
        let (cluster, holder) = (cluster.to_owned(), holder.to_owned());
        self.run("taking an apply lock", move |store| {
            store.acquire_apply_lock(&cluster, &holder, now, ttl)
        })
        .await
    }

    async fn renew_apply_lock(
        &self,
        lock: &ApplyLock,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock> {
        let lock = lock.clone();
        self.run("renewing an apply lock", move |store| {
            store.renew_apply_lock(&lock, now, ttl)
        })
        .await
    }

    async fn release_apply_lock(&self, lock: &ApplyLock) -> Result<()> {
        let lock = lock.clone();
        self.run("releasing an apply lock", move |store| {
            store.release_apply_lock(&lock)
        })
        .await
    }

    async fn expire_apply_lock(&self, cluster: &str, holder: &str) -> Result<bool> {
        let (cluster, holder) = (cluster.to_owned(), holder.to_owned());
        self.run("expiring an apply lock", move |store| {
            store.expire_apply_lock(&cluster, &holder)
        })
        .await
    }

    async fn apply_lock(&self, cluster: &str) -> Result<Option<ApplyLock>> {
        let cluster = cluster.to_owned();
        self.run("reading an apply lock", move |store| {
            store.apply_lock(&cluster)
        })
        .await
    }
}
