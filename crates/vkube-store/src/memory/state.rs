//! The tables of a [`MemoryStore`](super::MemoryStore), as plain Rust
//! values, and the lookups every trait's code shares. Everything a cluster
//! owns hangs off its [`ClusterEntry`], so removing the cluster removes it
//! all; apply locks and cloud credentials live apart, as their SQL tables
//! do (a lock may exist before its cluster and outlives it by name only).

use std::collections::BTreeMap;
use std::net::IpAddr;

use vkube_core::ipam::IpPool;

use crate::cluster::{AddonRecord, ClusterRecord, NodeRecord};
use crate::error::{Error, Result};
use crate::journal::{Event, Intent};
use crate::lock::Fence;
use crate::rules::{check_fence, LockRow};
use crate::time::Timestamp;

/// The whole state. `Clone` is a snapshot.
#[derive(Debug, Clone, Default)]
pub(super) struct State {
    /// By name.
    pub(super) pools: BTreeMap<String, PoolEntry>,
    /// By name.
    pub(super) clusters: BTreeMap<String, ClusterEntry>,
    /// By cluster name; a released lock keeps its row so the generation
    /// keeps counting.
    pub(super) locks: BTreeMap<String, LockRow>,
    /// By name.
    pub(super) credentials: BTreeMap<String, CredentialsRow>,
    /// The last intent id handed out: ids are never reused.
    pub(super) last_intent_id: i64,
    /// The last event sequence handed out.
    pub(super) last_event_sequence: i64,
}

/// One pool with its leases.
#[derive(Debug, Clone)]
pub(super) struct PoolEntry {
    pub(super) pool: IpPool,
    /// For a `restrictToCluster` pool, the cluster that claimed it.
    pub(super) owner: Option<String>,
    /// Leased addresses, in address order.
    pub(super) leases: BTreeMap<IpAddr, Holder>,
}

/// Who holds a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Holder {
    pub(super) cluster: String,
    pub(super) node: String,
}

/// One cluster and everything it owns.
#[derive(Debug, Clone)]
pub(super) struct ClusterEntry {
    pub(super) record: ClusterRecord,
    /// By node name.
    pub(super) nodes: BTreeMap<String, NodeRecord>,
    /// By id, open and completed.
    pub(super) intents: BTreeMap<i64, Intent>,
    /// In sequence order.
    pub(super) events: Vec<Event>,
    /// Sealed values, by secret name.
    pub(super) secrets: BTreeMap<String, String>,
    /// By add-on name.
    pub(super) addons: BTreeMap<String, AddonRecord>,
}

impl ClusterEntry {
    pub(super) fn new(record: ClusterRecord) -> Self {
        ClusterEntry {
            record,
            nodes: BTreeMap::new(),
            intents: BTreeMap::new(),
            events: Vec::new(),
            secrets: BTreeMap::new(),
            addons: BTreeMap::new(),
        }
    }

    /// Node records by pool, then index, then name (the SQL stores' order).
    pub(super) fn sorted_nodes(&self) -> Vec<NodeRecord> {
        let mut nodes: Vec<NodeRecord> = self.nodes.values().cloned().collect();
        nodes.sort_by(|a, b| {
            (&a.node.pool, a.node.index, &a.node.name).cmp(&(
                &b.node.pool,
                b.node.index,
                &b.node.name,
            ))
        });
        nodes
    }

    /// Intents never completed, oldest first.
    pub(super) fn open_intents(&self) -> Vec<Intent> {
        self.intents
            .values()
            .filter(|intent| intent.completed_at.is_none())
            .cloned()
            .collect()
    }
}

/// Stored cloud credentials; the password sealed.
#[derive(Debug, Clone)]
pub(super) struct CredentialsRow {
    pub(super) username: String,
    pub(super) sealed_password: String,
    pub(super) created_at: Timestamp,
    pub(super) updated_at: Timestamp,
}

impl State {
    /// The cluster, or `ClusterNotFound`.
    pub(super) fn cluster(&self, name: &str) -> Result<&ClusterEntry> {
        self.clusters.get(name).ok_or_else(|| not_found(name))
    }

    /// The cluster for changing, or `ClusterNotFound`.
    pub(super) fn cluster_mut(&mut self, name: &str) -> Result<&mut ClusterEntry> {
        self.clusters.get_mut(name).ok_or_else(|| not_found(name))
    }

    /// `LockLost` unless `fence` still holds its cluster's lock: the first
    /// check of every fenced write.
    pub(super) fn check_fence(&self, fence: &Fence) -> Result<()> {
        check_fence(fence, self.locks.get(fence.cluster()).cloned())
    }
}

fn not_found(cluster: &str) -> Error {
    Error::ClusterNotFound {
        cluster: cluster.to_owned(),
    }
}
