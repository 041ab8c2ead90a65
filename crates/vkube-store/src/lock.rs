//! The [`ApplyLocks`] trait: one lock row per cluster keeps two appliers
//! (two `vkube cluster apply` runs, or two server replicas) apart.
//!
//! A lock is a lease in time: it expires at `expires_at` unless renewed,
//! so a crashed applier never blocks the cluster for longer than its TTL;
//! the next applier takes it over. Each takeover or fresh acquisition gets
//! a new `generation`, so an applier whose lock expired and was taken over
//! learns it on its next renewal (`LockLost`) instead of carrying on
//! alongside the new holder.
//!
//! Dropping an [`ApplyLock`] does not release it (a drop cannot report a
//! failed write); call [`ApplyLocks::release_apply_lock`], or let it expire.

use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::time::Timestamp;

/// A held apply lock: the token for renewing and releasing it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[must_use = "an apply lock should be renewed while applying and released afterwards"]
pub struct ApplyLock {
    /// The cluster it locks.
    pub cluster: String,
    /// Who holds it: unique per applier run (e.g. `host:pid:start-time`).
    pub holder: String,
    /// Increases every time the lock changes hands.
    pub generation: u64,
    /// When this holder acquired it.
    pub acquired_at: Timestamp,
    /// When it expires unless renewed.
    pub expires_at: Timestamp,
    /// The previous holder, when its expired lock was taken over: its run
    /// may have stopped mid-change, so look at open intents.
    pub taken_over_from: Option<String>,
}

/// Per-cluster apply locks.
///
/// Locks need not belong to a recorded cluster: the first apply takes the
/// lock before `create_cluster`. Expiry compares times passed by callers,
/// so appliers on several hosts need roughly synchronized clocks (NTP);
/// choose TTLs well above the expected skew.
pub trait ApplyLocks: Send + Sync {
    /// Takes the cluster's apply lock until `now + ttl`.
    ///
    /// Succeeds when the lock is free, expired (a takeover: crash recovery)
    /// or already held by `holder` (then it is renewed, so retrying is
    /// safe). Otherwise fails with `Locked`, naming the holder and when its
    /// lock expires.
    fn acquire_apply_lock(
        &self,
        cluster: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock>;

    /// Extends a held lock to `now + ttl`; also works after expiry as long
    /// as nobody took it over. Fails with `LockLost` once another holder
    /// has it (or the cluster was removed): stop applying.
    fn renew_apply_lock(
        &self,
        lock: &ApplyLock,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock>;

    /// Releases a held lock. Idempotent: releasing a lock that is no longer
    /// held, or held by someone else, changes nothing.
    fn release_apply_lock(&self, lock: &ApplyLock) -> Result<()>;

    /// Expire the lock of `holder` at once, for a holder known to be dead
    /// (e.g. a process on this host that no longer runs), so the next
    /// `acquire_apply_lock` takes it over. Changes nothing when someone
    /// else holds the lock by now. Returns whether it expired the lock.
    fn expire_apply_lock(&self, cluster: &str, holder: &str) -> Result<bool>;

    /// The current holder of the cluster's lock, if any, expired or not
    /// (compare `expires_at` with the time), for `describe`.
    fn apply_lock(&self, cluster: &str) -> Result<Option<ApplyLock>>;
}
