//! Apply locks in memory: the [`ApplyLocks`] implementation. The decisions
//! are `crate::rules`' (as for the SQL stores); this module only keeps the
//! rows. The fence check of fenced writes is [`State::check_fence`].

use std::time::Duration;

use async_trait::async_trait;

use super::state::State;
use super::{MemoryStore, Operation};
use crate::error::Result;
use crate::lock::{ApplyLock, ApplyLocks};
use crate::rules::{acquisition, check_name, check_ttl, lock_lost, LockRow};
use crate::time::Timestamp;

impl State {
    /// The row of `lock`, if it still names its holder and generation.
    fn held_row(&mut self, lock: &ApplyLock) -> Option<&mut LockRow> {
        self.locks.get_mut(&lock.cluster).filter(|row| {
            row.holder.as_deref() == Some(lock.holder.as_str()) && row.generation == lock.generation
        })
    }

    fn acquire_apply_lock(
        &mut self,
        cluster: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock> {
        check_name("cluster", cluster)?;
        check_name("holder", holder)?;
        check_ttl(ttl)?;
        let row = self.locks.get(cluster).cloned();
        let lock = acquisition(row, cluster, holder, now, now.saturating_add(ttl))?;
        let row = LockRow {
            holder: Some(lock.holder.clone()),
            generation: lock.generation,
            acquired_at: lock.acquired_at,
            expires_at: lock.expires_at,
        };
        self.locks.insert(cluster.to_owned(), row);
        Ok(lock)
    }

    fn renew_apply_lock(
        &mut self,
        lock: &ApplyLock,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock> {
        check_ttl(ttl)?;
        let expires_at = now.saturating_add(ttl);
        match self.held_row(lock) {
            Some(row) => row.expires_at = expires_at,
            None => {
                let row = self.locks.get(&lock.cluster).cloned();
                return Err(lock_lost(&lock.cluster, &lock.holder, row));
            }
        }
        Ok(ApplyLock {
            expires_at,
            ..lock.clone()
        })
    }

    fn expire_apply_lock(&mut self, cluster: &str, holder: &str) -> bool {
        match self.locks.get_mut(cluster) {
            Some(row) if row.holder.as_deref() == Some(holder) => {
                row.expires_at = Timestamp::from_unix_seconds(0);
                true
            }
            _ => false,
        }
    }
}

#[async_trait]
impl ApplyLocks for MemoryStore {
    async fn acquire_apply_lock(
        &self,
        cluster: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock> {
        self.write(Operation::AcquireApplyLock, |state, _| {
            state.acquire_apply_lock(cluster, holder, now, ttl)
        })
    }

    async fn renew_apply_lock(
        &self,
        lock: &ApplyLock,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock> {
        self.write(Operation::RenewApplyLock, |state, _| {
            state.renew_apply_lock(lock, now, ttl)
        })
    }

    async fn release_apply_lock(&self, lock: &ApplyLock) -> Result<()> {
        self.write(Operation::ReleaseApplyLock, |state, _| {
            // The row stays (no holder) so the generation keeps counting.
            if let Some(row) = state.held_row(lock) {
                row.holder = None;
            }
            Ok(())
        })
    }

    async fn expire_apply_lock(&self, cluster: &str, holder: &str) -> Result<bool> {
        self.write(Operation::ExpireApplyLock, |state, _| {
            Ok(state.expire_apply_lock(cluster, holder))
        })
    }

    async fn apply_lock(&self, cluster: &str) -> Result<Option<ApplyLock>> {
        self.read(Operation::ApplyLock, |state, _| {
            Ok(state
                .locks
                .get(cluster)
                .cloned()
                .and_then(|row| row.into_lock(cluster)))
        })
    }
}
