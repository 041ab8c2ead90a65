//! The [`Store`] trait: the narrow set of operations vkube needs from its
//! persistent state, so that SQLite and PostgreSQL can both sit behind it.

use std::net::IpAddr;

use async_trait::async_trait;
use serde::Serialize;
use vkube_core::ipam::{check_overlap, IpPool, Lease, PoolName};

use crate::error::{Error, Result};
use crate::lock::Fence;

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
///
/// Allocation and node release are what an apply does for its cluster, so
/// they are fenced by its apply lock (see [`Fence`]): a holder whose lock
/// was taken over gets `LockLost` and changes nothing.
#[async_trait]
pub trait Store: Send + Sync {
    /// Adds pools, all or none. Fails with `PoolExists`, or `Overlap` when a
    /// pool shares addresses with a stored one or another new one (unless
    /// `allow_overlap`). Not idempotent: a second call fails with `PoolExists`.
    async fn create_pools(&self, pools: &[IpPool], allow_overlap: bool) -> Result<Vec<PoolRecord>>;

    /// One pool, or `PoolNotFound`.
    async fn pool(&self, name: &str) -> Result<PoolRecord>;

    /// All pools, by name.
    async fn pools(&self) -> Result<Vec<PoolRecord>>;

    /// Deletes a pool. With leases left it fails with `PoolInUse`, unless
    /// `force`, which releases them too; returns the released leases.
    async fn delete_pool(&self, name: &str, force: bool) -> Result<Vec<Lease>>;

    /// Leases the lowest free address of `pool` to `node` of the fence's
    /// cluster.
    ///
    /// Idempotent: while the node holds a lease from this pool, asking again
    /// returns that same lease, so it is safe to retry after a crash or
    /// timeout. No address is ever leased twice, whatever the number of
    /// concurrent callers. Fails with `PoolNotFound`, `PoolFull`, or
    /// `PoolRestricted` when the pool belongs to another cluster; the first
    /// cluster allocating from a `restrictToCluster` pool claims it; with
    /// `LockLost` when the fence's lock changed hands.
    async fn allocate(&self, fence: &Fence, pool: &str, node: &str) -> Result<Lease>;

    /// Leases exactly `address` of `pool` to `node` of the fence's cluster:
    /// how a cluster taken over from its VMs (`vkube cluster adopt`) gets
    /// back the addresses its nodes already use.
    ///
    /// Idempotent: while the node holds this address, asking again returns
    /// that lease. Fails with `AddressUnavailable` when the pool cannot
    /// hand out `address` (outside its range, excluded, its gateway), when
    /// another node holds it, or when the node holds another address of
    /// the pool; with `PoolNotFound`, `PoolRestricted` (the first cluster
    /// leasing from a `restrictToCluster` pool claims it) or `LockLost`.
    async fn allocate_address(
        &self,
        fence: &Fence,
        pool: &str,
        node: &str,
        address: IpAddr,
    ) -> Result<Lease>;

    /// Releases every lease of one node of the fence's cluster; returns
    /// them (none is not an error, so retrying is safe). Fails with
    /// `LockLost` when the fence's lock changed hands.
    async fn release_node(&self, fence: &Fence, node: &str) -> Result<Vec<Lease>>;

    /// Releases every lease of a cluster and gives up its claim on
    /// restricted pools; returns the leases (none is not an error).
    async fn release_cluster(&self, cluster: &str) -> Result<Vec<Lease>>;

    /// Leases matching `filter`, by pool then address.
    async fn leases(&self, filter: &LeaseFilter) -> Result<Vec<Lease>>;
}

/// The records `create_pools` returns for `pools` added to `known`, or
/// `PoolExists` / `Overlap` (unless `allow_overlap`), checking each new
/// pool against the stored ones and the new ones before it.
pub(crate) fn check_new_pools(
    known: &[IpPool],
    pools: &[IpPool],
    allow_overlap: bool,
) -> Result<Vec<PoolRecord>> {
    let mut known = known.to_vec();
    let mut records = Vec::with_capacity(pools.len());
    for pool in pools {
        if known.iter().any(|other| other.name() == pool.name()) {
            return Err(Error::PoolExists {
                pool: pool.name().clone(),
            });
        }
        if !allow_overlap {
            check_overlap(pool, &known).map_err(|error| match error {
                vkube_core::ipam::Error::Overlap {
                    pool,
                    other,
                    addresses,
                } => Error::Overlap {
                    pool,
                    other,
                    addresses,
                },
                other => Error::Corrupt {
                    what: "pool".into(),
                    problem: other.to_string(),
                },
            })?;
        }
        known.push(pool.clone());
        records.push(PoolRecord {
            pool: pool.clone(),
            owner: None,
            allocated: 0,
            capacity: pool.capacity(),
        });
    }
    Ok(records)
}
