//! Apply locks in PostgreSQL: the [`ApplyLocks`] implementation, and the
//! fence check of every fenced write.
//!
//! Acquisition is one `INSERT … ON CONFLICT (cluster) DO UPDATE … WHERE
//! free, ours or expired … RETURNING`: PostgreSQL decides atomically, and
//! no row back means another holder has it. The fence check reads the lock
//! row `FOR SHARE` inside the fenced write's transaction, so a takeover
//! (an update of that row) waits until the write has committed, and a
//! write after the takeover sees the new generation.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{bigint, commit, pg, unsigned, write, PgStore};
use crate::error::Result;
use crate::lock::{ApplyLock, ApplyLocks, Fence};
use crate::rules::{check_fence, check_name, check_ttl, lock_lost, locked, LockRow};
use crate::time::Timestamp;

/// How often acquisition retries when the holder it was refused by is gone
/// by the time it looks (released in between).
const ACQUIRE_ATTEMPTS: usize = 3;

const LOCK_COLUMNS: &str = "holder, generation, acquired_at, expires_at";

fn lock_row(row: &Row, cluster: &str) -> Result<LockRow> {
    Ok(LockRow {
        holder: row.get(0),
        generation: unsigned(row.get(1), || {
            format!("generation of the apply lock of cluster `{cluster}`")
        })?,
        acquired_at: Timestamp::from_unix_seconds(row.get(2)),
        expires_at: Timestamp::from_unix_seconds(row.get(3)),
    })
}

/// The lock row, read with `locking` (e.g. `FOR SHARE`, or empty).
async fn load_lock(
    client: &impl GenericClient,
    cluster: &str,
    locking: &str,
    action: &str,
) -> Result<Option<LockRow>> {
    client
        .query_opt(
            &format!("SELECT {LOCK_COLUMNS} FROM apply_locks WHERE cluster = $1 {locking}"),
            &[&cluster],
        )
        .await
        .map_err(pg(action))?
        .map(|row| lock_row(&row, cluster))
        .transpose()
}

/// `LockLost` unless `fence` still holds its cluster's lock; call first in
/// a fenced write's transaction. Holds the lock row `FOR SHARE` until the
/// transaction ends.
pub(super) async fn fenced(client: &impl GenericClient, fence: &Fence, action: &str) -> Result<()> {
    let row = load_lock(client, fence.cluster(), "FOR SHARE", action).await?;
    check_fence(fence, row)
}

/// Locks the cluster's lock row for removal (first in the global lock
/// order), if there is one.
pub(super) async fn lock_for_removal(
    client: &impl GenericClient,
    cluster: &str,
    action: &str,
) -> Result<()> {
    load_lock(client, cluster, "FOR UPDATE", action).await?;
    Ok(())
}

impl PgStore {
    /// One acquisition attempt: the lock, or the row that refused it.
    async fn try_acquire(
        &self,
        cluster: &str,
        holder: &str,
        now: Timestamp,
        expires_at: Timestamp,
        action: &str,
    ) -> Result<std::result::Result<ApplyLock, Option<LockRow>>> {
        let client = self.client(action).await?;
        // `previous` locks the row (if any) and names the holder replaced.
        // Joining it into the inserted row makes PostgreSQL read it before
        // the update (read after, it would skip the row this statement
        // changed); RETURNING reuses that one reading.
        let row = client
            .query_opt(
                "WITH previous AS (
                     SELECT holder FROM apply_locks WHERE cluster = $1 FOR UPDATE
                 )
                 INSERT INTO apply_locks AS l (cluster, holder, generation, acquired_at, expires_at)
                 SELECT $1::text, $2::text, 1, $3::bigint, $4::bigint
                 FROM (VALUES (1)) AS one LEFT JOIN previous ON true
                 ON CONFLICT (cluster) DO UPDATE SET
                     holder = EXCLUDED.holder,
                     generation = CASE WHEN l.holder IS NOT DISTINCT FROM EXCLUDED.holder
                                       THEN l.generation ELSE l.generation + 1 END,
                     acquired_at = CASE WHEN l.holder IS NOT DISTINCT FROM EXCLUDED.holder
                                        THEN l.acquired_at ELSE EXCLUDED.acquired_at END,
                     expires_at = EXCLUDED.expires_at
                 WHERE l.holder IS NULL OR l.holder = EXCLUDED.holder
                    OR l.expires_at <= EXCLUDED.acquired_at
                 RETURNING generation, acquired_at, (SELECT holder FROM previous)",
                &[
                    &cluster,
                    &holder,
                    &now.unix_seconds(),
                    &expires_at.unix_seconds(),
                ],
            )
            .await
            .map_err(pg(action))?;
        let Some(row) = row else {
            // READ COMMITTED: this statement sees the holder that refused us.
            return Ok(Err(load_lock(&client, cluster, "", action).await?));
        };
        let previous: Option<String> = row.get(2);
        Ok(Ok(ApplyLock {
            cluster: cluster.to_owned(),
            holder: holder.to_owned(),
            generation: unsigned(row.get(0), || {
                format!("generation of the apply lock of cluster `{cluster}`")
            })?,
            acquired_at: Timestamp::from_unix_seconds(row.get(1)),
            expires_at,
            taken_over_from: previous.filter(|previous| previous != holder),
        }))
    }
}

#[async_trait]
impl ApplyLocks for PgStore {
    async fn acquire_apply_lock(
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
        let mut refused_by = None;
        for _ in 0..ACQUIRE_ATTEMPTS {
            match self
                .try_acquire(cluster, holder, now, expires_at, &action)
                .await?
            {
                Ok(lock) => return Ok(lock),
                Err(Some(LockRow {
                    holder: Some(current),
                    expires_at,
                    ..
                })) => {
                    if expires_at > now {
                        return Err(locked(cluster, current, expires_at, now));
                    }
                    refused_by = Some((current, expires_at));
                }
                // Released since it refused us: try again.
                Err(_) => {}
            }
        }
        let (current, expires_at) = refused_by.unwrap_or_else(|| ("another applier".into(), now));
        Err(locked(cluster, current, expires_at, now))
    }

    async fn renew_apply_lock(
        &self,
        lock: &ApplyLock,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock> {
        check_ttl(ttl)?;
        let action = format!("renewing the apply lock of cluster `{}`", lock.cluster);
        let expires_at = now.saturating_add(ttl);
        let client = self.client(&action).await?;
        let changed = client
            .execute(
                "UPDATE apply_locks SET expires_at = $4
                 WHERE cluster = $1 AND holder = $2 AND generation = $3",
                &[
                    &lock.cluster,
                    &lock.holder,
                    &bigint(lock.generation),
                    &expires_at.unix_seconds(),
                ],
            )
            .await
            .map_err(pg(&action))?;
        if changed == 0 {
            let row = load_lock(&client, &lock.cluster, "", &action).await?;
            return Err(lock_lost(&lock.cluster, &lock.holder, row));
        }
        Ok(ApplyLock {
            expires_at,
            ..lock.clone()
        })
    }

    async fn release_apply_lock(&self, lock: &ApplyLock) -> Result<()> {
        let action = format!("releasing the apply lock of cluster `{}`", lock.cluster);
        let client = self.client(&action).await?;
        // The row stays (holder NULL) so the generation keeps counting.
        client
            .execute(
                "UPDATE apply_locks SET holder = NULL
                 WHERE cluster = $1 AND holder = $2 AND generation = $3",
                &[&lock.cluster, &lock.holder, &bigint(lock.generation)],
            )
            .await
            .map_err(pg(&action))?;
        Ok(())
    }

    async fn expire_apply_lock(&self, cluster: &str, holder: &str) -> Result<bool> {
        let action = format!("expiring the apply lock of cluster `{cluster}`");
        let mut client = self.client(&action).await?;
        let transaction = write(&mut client, &action).await?;
        let changed = transaction
            .execute(
                "UPDATE apply_locks SET expires_at = 0 WHERE cluster = $1 AND holder = $2",
                &[&cluster, &holder],
            )
            .await
            .map_err(pg(&action))?;
        commit(transaction, &action).await?;
        Ok(changed == 1)
    }

    async fn apply_lock(&self, cluster: &str) -> Result<Option<ApplyLock>> {
        let action = format!("reading the apply lock of cluster `{cluster}`");
        let client = self.client(&action).await?;
        Ok(load_lock(&client, cluster, "", &action)
            .await?
            .and_then(|row| row.into_lock(cluster)))
    }
}
