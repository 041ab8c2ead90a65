//! IP pools and leases in memory: the [`Store`] implementation.
//!
//! Address choice is `vkube_core::ipam::next_free` over the pool's leased
//! addresses, as in the SQL stores (which only add a low-water mark to
//! read fewer rows; the address chosen is the same).

use std::collections::BTreeSet;
use std::net::IpAddr;

use async_trait::async_trait;
use vkube_core::ipam::{next_free, IpPool, Lease};

use super::state::{Holder, PoolEntry, State};
use super::{MemoryStore, Operation};
use crate::error::{Error, Result};
use crate::lock::Fence;
use crate::rules::{check_name, claim, exact_lease};
use crate::store::{check_new_pools, LeaseFilter, PoolRecord, Store};

impl PoolEntry {
    fn record(&self) -> PoolRecord {
        PoolRecord {
            pool: self.pool.clone(),
            owner: self.owner.clone(),
            allocated: self.leases.len() as u64,
            capacity: self.pool.capacity(),
        }
    }

    /// The pool's leases held by `wanted`, in address order.
    fn leases_where(&self, wanted: impl Fn(&Holder) -> bool) -> Vec<Lease> {
        self.leases
            .iter()
            .filter(|(_, holder)| wanted(holder))
            .map(|(address, holder)| {
                Lease::new(&self.pool, *address, &holder.cluster, &holder.node)
            })
            .collect()
    }

    /// Leases `address` to `cluster`/`node`; with `claiming`, the cluster
    /// claims the (restricted) pool too.
    fn take(&mut self, address: IpAddr, cluster: &str, node: &str, claiming: bool) {
        if claiming {
            self.owner = Some(cluster.to_owned());
        }
        let holder = Holder {
            cluster: cluster.to_owned(),
            node: node.to_owned(),
        };
        self.leases.insert(address, holder);
    }

    /// The address `cluster`/`node` holds in this pool, if any.
    fn address_of(&self, cluster: &str, node: &str) -> Option<IpAddr> {
        self.leases
            .iter()
            .find(|(_, holder)| holder.cluster == cluster && holder.node == node)
            .map(|(address, _)| *address)
    }
}

impl State {
    fn pool_entry(&self, name: &str) -> Result<&PoolEntry> {
        self.pools.get(name).ok_or_else(|| Error::PoolNotFound {
            pool: name.to_owned(),
        })
    }

    /// Leases held by `wanted`, by pool then address.
    fn leases_where(&self, wanted: impl Fn(&str, &Holder) -> bool) -> Vec<Lease> {
        self.pools
            .iter()
            .flat_map(|(name, entry)| entry.leases_where(|holder| wanted(name, holder)))
            .collect()
    }

    /// Releases the leases of one node, or of the whole cluster (which
    /// also gives up its claim on restricted pools); returns them.
    pub(super) fn release_leases(&mut self, cluster: &str, node: Option<&str>) -> Vec<Lease> {
        let held = |holder: &Holder| {
            holder.cluster == cluster && node.is_none_or(|node| holder.node == node)
        };
        let released = self.leases_where(|_, holder| held(holder));
        for entry in self.pools.values_mut() {
            entry.leases.retain(|_, holder| !held(holder));
            if node.is_none() && entry.owner.as_deref() == Some(cluster) {
                entry.owner = None;
            }
        }
        released
    }

    fn allocate(&mut self, fence: &Fence, pool_name: &str, node: &str) -> Result<Lease> {
        let cluster = fence.cluster();
        self.check_fence(fence)?;
        let entry = self
            .pools
            .get_mut(pool_name)
            .ok_or_else(|| Error::PoolNotFound {
                pool: pool_name.to_owned(),
            })?;
        if let Some(address) = entry.address_of(cluster, node) {
            return Ok(Lease::new(&entry.pool, address, cluster, node));
        }
        let claiming = claim(&entry.pool, entry.owner.as_deref(), cluster)?;
        let used: BTreeSet<IpAddr> = entry.leases.keys().copied().collect();
        let address = next_free(&entry.pool, &used).ok_or_else(|| Error::PoolFull {
            pool: entry.pool.name().clone(),
            used: used.len() as u128,
            total: entry.pool.capacity(),
        })?;
        entry.take(address, cluster, node, claiming);
        Ok(Lease::new(&entry.pool, address, cluster, node))
    }

    fn allocate_address(
        &mut self,
        fence: &Fence,
        pool_name: &str,
        node: &str,
        address: IpAddr,
    ) -> Result<Lease> {
        let cluster = fence.cluster();
        self.check_fence(fence)?;
        let entry = self
            .pools
            .get_mut(pool_name)
            .ok_or_else(|| Error::PoolNotFound {
                pool: pool_name.to_owned(),
            })?;
        let holder = entry
            .leases
            .get(&address)
            .map(|h| (h.cluster.as_str(), h.node.as_str()));
        let held = entry.address_of(cluster, node);
        if !exact_lease(&entry.pool, address, node, holder, held)? {
            let claiming = claim(&entry.pool, entry.owner.as_deref(), cluster)?;
            entry.take(address, cluster, node, claiming);
        }
        Ok(Lease::new(&entry.pool, address, cluster, node))
    }

    fn delete_pool(&mut self, name: &str, force: bool) -> Result<Vec<Lease>> {
        let entry = self.pool_entry(name)?;
        let leases = entry.leases_where(|_| true);
        if !leases.is_empty() && !force {
            return Err(Error::PoolInUse {
                pool: entry.pool.name().clone(),
                allocated: leases.len() as u64,
            });
        }
        self.pools.remove(name);
        Ok(leases)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_pools(&self, pools: &[IpPool], allow_overlap: bool) -> Result<Vec<PoolRecord>> {
        self.write(Operation::CreatePools, |state, _| {
            let known: Vec<IpPool> = state.pools.values().map(|e| e.pool.clone()).collect();
            let records = check_new_pools(&known, pools, allow_overlap)?;
            for pool in pools {
                let entry = PoolEntry {
                    pool: pool.clone(),
                    owner: None,
                    leases: Default::default(),
                };
                state.pools.insert(pool.name().as_str().to_owned(), entry);
            }
            Ok(records)
        })
    }

    async fn pool(&self, name: &str) -> Result<PoolRecord> {
        self.read(Operation::Pool, |state, _| {
            Ok(state.pool_entry(name)?.record())
        })
    }

    async fn pools(&self) -> Result<Vec<PoolRecord>> {
        self.read(Operation::Pools, |state, _| {
            Ok(state.pools.values().map(PoolEntry::record).collect())
        })
    }

    async fn delete_pool(&self, name: &str, force: bool) -> Result<Vec<Lease>> {
        self.write(Operation::DeletePool, |state, _| {
            state.delete_pool(name, force)
        })
    }

    async fn allocate(&self, fence: &Fence, pool: &str, node: &str) -> Result<Lease> {
        self.write(Operation::Allocate, |state, _| {
            check_name("cluster", fence.cluster())?;
            check_name("node", node)?;
            state.allocate(fence, pool, node)
        })
    }

    async fn allocate_address(
        &self,
        fence: &Fence,
        pool: &str,
        node: &str,
        address: IpAddr,
    ) -> Result<Lease> {
        self.write(Operation::AllocateAddress, |state, _| {
            check_name("cluster", fence.cluster())?;
            check_name("node", node)?;
            state.allocate_address(fence, pool, node, address)
        })
    }

    async fn release_node(&self, fence: &Fence, node: &str) -> Result<Vec<Lease>> {
        self.write(Operation::ReleaseNode, |state, _| {
            state.check_fence(fence)?;
            Ok(state.release_leases(fence.cluster(), Some(node)))
        })
    }

    async fn release_cluster(&self, cluster: &str) -> Result<Vec<Lease>> {
        self.write(Operation::ReleaseCluster, |state, _| {
            Ok(state.release_leases(cluster, None))
        })
    }

    async fn leases(&self, filter: &LeaseFilter) -> Result<Vec<Lease>> {
        self.read(Operation::Leases, |state, _| {
            if let Some(pool) = &filter.pool {
                state.pool_entry(pool.as_str())?;
            }
            Ok(state.leases_where(|pool, holder| {
                filter
                    .pool
                    .as_ref()
                    .is_none_or(|wanted| wanted.as_str() == pool)
                    && filter
                        .cluster
                        .as_ref()
                        .is_none_or(|wanted| *wanted == holder.cluster)
            }))
        })
    }
}
