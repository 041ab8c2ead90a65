//! Choosing addresses: [`next_free`], the pure [`allocate`], overlap checks
//! between pools, and the [`Lease`] a node receives.
//!
//! Nothing here stores anything: callers pass in the addresses already in
//! use and persist the result themselves (`vkube-store` does both inside one
//! transaction, which is what makes allocation safe across processes).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::address::{from_bits, to_bits, AddressRange};
use super::error::Error;
use super::pool::{IpPool, PoolName};

/// An address handed to one node of one cluster, with everything the node
/// needs to configure its interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    /// The pool the address came from.
    pub pool: PoolName,
    /// The node's address.
    pub address: IpAddr,
    /// Prefix length of the node's network.
    pub prefix: u8,
    /// Default gateway.
    pub gateway: IpAddr,
    /// DNS servers.
    pub name_servers: Vec<IpAddr>,
    /// DNS search domains.
    pub search_domains: Vec<String>,
    /// Owning cluster.
    pub cluster: String,
    /// Owning node within the cluster.
    pub node: String,
}

impl Lease {
    /// The lease for `address` of `pool`, owned by `cluster`/`node`. Does not
    /// check that the address is free.
    pub fn new(pool: &IpPool, address: IpAddr, cluster: &str, node: &str) -> Self {
        Lease {
            pool: pool.name().clone(),
            address,
            prefix: pool.prefix(),
            gateway: pool.gateway(),
            name_servers: pool.name_servers().to_vec(),
            search_domains: pool.search_domains().to_vec(),
            cluster: cluster.to_owned(),
            node: node.to_owned(),
        }
    }
}

/// The lowest address of `pool` that is neither in `used` nor reserved
/// (network, broadcast, gateway, excluded), or `None` when the pool is full.
///
/// Pure and deterministic: the same inputs always give the same address, so
/// a caller that retries after an interrupted write picks the same one.
/// Runs in time linear in the number of used addresses inside the pool.
pub fn next_free(pool: &IpPool, used: &BTreeSet<IpAddr>) -> Option<IpAddr> {
    next_free_from(pool, used, pool.addresses().range().start())
}

/// Like [`next_free`], but only considers addresses `>= from`. A store that
/// knows every allocatable address below `from` is taken can pass just the
/// used addresses from there on, instead of the whole pool's.
pub fn next_free_from(pool: &IpPool, used: &BTreeSet<IpAddr>, from: IpAddr) -> Option<IpAddr> {
    let range = pool.addresses().range();
    let (low, high) = range.bits();
    let is_v4 = range.start().is_ipv4();
    if from.is_ipv4() != is_v4 {
        return None;
    }
    let mut candidate = low.max(to_bits(from));
    let start = from_bits(range.start(), candidate);
    let mut reserved = pool.reserved_bits().into_iter().peekable();
    // `IpAddr` orders every IPv4 address before every IPv6 one, so stop at
    // the family boundary.
    let mut taken = used
        .range(start..)
        .take_while(|a| a.is_ipv4() == is_v4)
        .map(|a| to_bits(*a))
        .peekable();
    while candidate <= high {
        while reserved.next_if(|&(_, end)| end < candidate).is_some() {}
        if let Some(&(start, end)) = reserved.peek() {
            if start <= candidate {
                candidate = end.checked_add(1)?;
                continue;
            }
        }
        while taken.next_if(|&address| address < candidate).is_some() {}
        if taken.peek() == Some(&candidate) {
            candidate = candidate.checked_add(1)?;
            continue;
        }
        return Some(from_bits(range.start(), candidate));
    }
    None
}

/// The lease [`next_free`] would give `cluster`/`node`, or `None` when the
/// pool is full. Stores nothing; the caller persists the lease.
pub fn allocate(
    pool: &IpPool,
    used: &BTreeSet<IpAddr>,
    cluster: &str,
    node: &str,
) -> Option<Lease> {
    next_free(pool, used).map(|address| Lease::new(pool, address, cluster, node))
}

/// The addresses `a` and `b` are both defined with, if any. Reserved and
/// excluded addresses count: two pools over the same range overlap even if
/// their exclusions keep them apart today.
pub fn overlap(a: &IpPool, b: &IpPool) -> Option<AddressRange> {
    a.addresses().range().intersection(&b.addresses().range())
}

/// Fails with [`Error::Overlap`] naming the first pool of `existing` (other
/// than one of the same name) that shares addresses with `pool`.
pub fn check_overlap<'a>(
    pool: &IpPool,
    existing: impl IntoIterator<Item = &'a IpPool>,
) -> Result<(), Error> {
    for other in existing {
        if other.name() == pool.name() {
            continue;
        }
        if let Some(addresses) = overlap(pool, other) {
            return Err(Error::Overlap {
                pool: pool.name().clone(),
                other: other.name().clone(),
                addresses,
            });
        }
    }
    Ok(())
}
