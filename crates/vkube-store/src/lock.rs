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
//!
//! Writes an apply makes are fenced by the lock's generation: see [`Fence`].

use std::time::Duration;

use async_trait::async_trait;
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

impl ApplyLock {
    /// The fence the holder's writes carry; unchanged by renewals.
    pub fn fence(&self) -> Fence {
        Fence {
            cluster: self.cluster.clone(),
            holder: self.holder.clone(),
            generation: self.generation,
        }
    }
}

/// What a fenced write proves: that it comes from `holder` while it still
/// holds generation `generation` of `cluster`'s apply lock. Anyone may build
/// one (e.g. a fake store); the store checks it against the lock row, so a
/// made-up fence grants nothing.
///
/// Renewal alone cannot stop a holder that paused (a long stall, a
/// suspended VM, a lost network) between its last renewal and its next
/// write: by then another applier may hold the lock. So every write an
/// apply makes to a cluster's record takes the holder's [`Fence`] (its
/// cluster, holder and generation) and the store checks it *inside the
/// write's own transaction*: if the lock row no longer names this holder
/// and generation (taken over, released, expired by name and re-taken, or
/// the cluster removed), the write fails with `LockLost` and changes
/// nothing. A holder whose lock expired but was not taken over may still
/// write, as it may still renew ([`ApplyLocks::renew_apply_lock`]).
/// PostgreSQL holds the lock row
/// `FOR SHARE` until the write commits, so a takeover waits for writes in
/// flight and every later write sees the new generation; SQLite's single
/// writer gives the same order.
///
/// Fenced: `create_cluster`, `update_cluster_spec`, `set_cluster_phase`,
/// `upsert_node`, `delete_node`, `record_addons`, `allocate`,
/// `release_node`, `record_intent`, `complete_intent`. Not fenced, on
/// purpose: deletion's `mark_deleting` and `remove_cluster` (they must work
/// while an applier is stuck; removal drops the lock row, which fences the
/// old holder out), events (an append-only history; a holder that lost its
/// lock may still say so), secrets (first writer wins or compare-and-set
/// already, and the CLI issues kubeconfigs without the lock), pools and
/// credentials (not a cluster's record).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fence {
    cluster: String,
    holder: String,
    generation: u64,
}

impl Fence {
    /// A fence for `holder`'s generation `generation` of `cluster`'s lock.
    pub fn new(cluster: impl Into<String>, holder: impl Into<String>, generation: u64) -> Self {
        Fence {
            cluster: cluster.into(),
            holder: holder.into(),
            generation,
        }
    }

    /// The cluster the fenced writes are for.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The lock holder.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The lock generation it was issued for.
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl From<&ApplyLock> for Fence {
    fn from(lock: &ApplyLock) -> Self {
        lock.fence()
    }
}

/// Per-cluster apply locks.
///
/// Locks need not belong to a recorded cluster: the first apply takes the
/// lock before `create_cluster`. Expiry compares times passed by callers,
/// so appliers on several hosts need roughly synchronized clocks (NTP);
/// choose TTLs well above the expected skew.
#[async_trait]
pub trait ApplyLocks: Send + Sync {
    /// Takes the cluster's apply lock until `now + ttl`.
    ///
    /// Succeeds when the lock is free, expired (a takeover: crash recovery)
    /// or already held by `holder` (then it is renewed, so retrying is
    /// safe). Otherwise fails with `Locked`, naming the holder and when its
    /// lock expires.
    async fn acquire_apply_lock(
        &self,
        cluster: &str,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock>;

    /// Extends a held lock to `now + ttl`; also works after expiry as long
    /// as nobody took it over. Fails with `LockLost` once another holder
    /// has it (or the cluster was removed): stop applying.
    async fn renew_apply_lock(
        &self,
        lock: &ApplyLock,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<ApplyLock>;

    /// Releases a held lock. Idempotent: releasing a lock that is no longer
    /// held, or held by someone else, changes nothing.
    async fn release_apply_lock(&self, lock: &ApplyLock) -> Result<()>;

    /// Expire the lock of `holder` at once, for a holder known to be dead
    /// (e.g. a process on this host that no longer runs), so the next
    /// `acquire_apply_lock` takes it over. Changes nothing when someone
    /// else holds the lock by now. Returns whether it expired the lock.
    async fn expire_apply_lock(&self, cluster: &str, holder: &str) -> Result<bool>;

    /// The current holder of the cluster's lock, if any, expired or not
    /// (compare `expires_at` with the time), for `describe`.
    async fn apply_lock(&self, cluster: &str) -> Result<Option<ApplyLock>>;
}
