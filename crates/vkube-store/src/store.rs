//! The [`Store`] trait: the narrow set of operations vkube needs from its
//! persistent state, so that SQLite and (later) PostgreSQL can both sit
//! behind it.

use serde::Serialize;
use vkube_core::ipam::{IpPool, Lease, PoolName};

use crate::error::Result;

/// A stored pool with its current use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolRecord {
    /// The definition.
    #[serde(flatten)]
    pub pool: IpPool,
    /// For a `restrictToCluster` pool, the cluster that claimed it.
    pub owner: Option<String>,
    /// Addresses leased.
    pub allocated: u64,
    /// Addresses the pool can hand out.
    pub capacity: u128,
}

/// Which leases [`Store::leases`] returns; empty means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseFilter {
    /// Only leases from this pool.
    pub pool: Option<PoolName>,
    /// Only leases of this cluster.
    pub cluster: Option<String>,
}

/// vkube's persistent state.
///
/// Every method runs in its own transaction: it either happens completely
/// or not at all, also when the process is killed mid-call. Implementations
/// must be safe for several processes (or replicas) sharing one state.
pub trait Store: Send + Sync {
    /// Adds pools, all or none. Fails with `PoolExists`, or `Overlap` when a
    /// pool shares addresses with a stored one or another new one (unless
    /// `allow_overlap`). Not idempotent: a second call fails with `PoolExists`.
    fn create_pools(&self, pools: &[IpPool], allow_overlap: bool) -> Result<Vec<PoolRecord>>;

    /// One pool, or `PoolNotFound`.
    fn pool(&self, name: &str) -> Result<PoolRecord>;

    /// All pools, by name.
    fn pools(&self) -> Result<Vec<PoolRecord>>;

    /// Deletes a pool. With leases left it fails with `PoolInUse`, unless
    /// `force`, which releases them too; returns the released leases.
    fn delete_pool(&self, name: &str, force: bool) -> Result<Vec<Lease>>;

    /// Leases the lowest free address of `pool` to `cluster`/`node`.
    ///
    /// Idempotent: while the node holds a lease from this pool, asking again
    /// returns that same lease, so it is safe to retry after a crash or
    /// timeout. No address is ever leased twice, whatever the number of
    /// concurrent callers. Fails with `PoolNotFound`, `PoolFull`, or
    /// `PoolRestricted` when the pool belongs to another cluster; the first
    /// cluster allocating from a `restrictToCluster` pool claims it.
    fn allocate(&self, pool: &str, cluster: &str, node: &str) -> Result<Lease>;

    /// Releases every lease of one node; returns them (none is not an
    /// error, so retrying is safe).
    fn release_node(&self, cluster: &str, node: &str) -> Result<Vec<Lease>>;

    /// Releases every lease of a cluster and gives up its claim on
    /// restricted pools; returns the leases (none is not an error).
    fn release_cluster(&self, cluster: &str) -> Result<Vec<Lease>>;

    /// Leases matching `filter`, by pool then address.
    fn leases(&self, filter: &LeaseFilter) -> Result<Vec<Lease>>;
}
