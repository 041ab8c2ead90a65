//! The [`ClusterStore`] trait: clusters (desired spec, phase, version) and
//! vkube's record of their nodes. The operation journal and events are in
//! [`Journal`](crate::Journal); the apply lock in
//! [`ApplyLocks`](crate::ApplyLocks).
//!
//! Node records say what vkube has *done* (or is about to do): which VM it
//! planned, cloned, powered on. They are not the truth about vCenter. The
//! reconcile loop observes vCenter on every pass and plans from that; it
//! uses node records to find its own half-done work (a `Creating` node whose
//! clone may or may not have finished) and to keep `vkube cluster ls` cheap.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use vkube_core::ipam::Lease;

use crate::error::Result;
use crate::journal::Intent;
use crate::lock::Fence;
use crate::time::Timestamp;

/// How long a deletion must have been stuck before `--force` may remove the
/// cluster from the store while VMs may remain (Palette's rule).
pub const FORCE_DELETE_AFTER: Duration = Duration::from_secs(15 * 60);

/// The most of an apply's error [`ClusterStore::set_cluster_status`] keeps.
pub const LAST_ERROR_MAX: usize = 4096;

text_enum! {
    /// Where a cluster is in its life. Stored as text.
    pub enum ClusterPhase {
        /// Recorded; nothing done in vCenter yet.
        Pending,
        /// First apply under way.
        Provisioning,
        /// Every node is up and matches the spec.
        Ready,
        /// A changed spec is being applied.
        Updating,
        /// The last apply failed or some node is missing or unhealthy.
        Degraded,
        /// Deletion has started; the spec can no longer change.
        Deleting,
        /// Every VM is gone; only the record remains until it is removed.
        Deleted,
    }
}

impl ClusterPhase {
    /// `Deleting` or `Deleted`.
    pub fn is_deletion(self) -> bool {
        matches!(self, ClusterPhase::Deleting | ClusterPhase::Deleted)
    }
}

text_enum! {
    /// How far vkube got with one node's VM. Stored as text.
    pub enum NodePhase {
        /// Planned, lease taken; no vCenter call made yet.
        Planned,
        /// The clone was requested; the VM may or may not exist yet.
        Creating,
        /// The VM exists (its `vm_id` is known) and is powered off.
        Created,
        /// The VM is powered on.
        PoweredOn,
        /// Its Node object has been seen in the cluster's API: from now on
        /// the node is drained before it is removed.
        Registered,
        /// vkube cordoned and drained it (it is on its way out); an
        /// uncordon by anyone makes it `Registered` again.
        Drained,
        /// Deletion was requested; the VM may still exist.
        Deleting,
    }
}

/// A stored cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRecord {
    /// The cluster name (unique).
    pub name: String,
    /// The caller-generated unique id, also written to the ownership tags.
    pub uid: String,
    /// The desired spec, as the user gave it.
    pub spec_yaml: String,
    /// The caller's hash of the validated spec, to notice changes cheaply.
    pub spec_hash: String,
    /// Bumped by every write that changes the row; writes name the version
    /// they read and fail with `Conflict` if it moved.
    pub version: u64,
    /// Where the cluster is in its life.
    pub phase: ClusterPhase,
    /// When deletion started (set once, never cleared).
    pub deletion_started_at: Option<Timestamp>,
    /// The instance UUID of the vCenter the cluster lives in, recorded by
    /// its first apply (or the first apply after an upgrade); set once.
    pub vcenter_uuid: Option<String>,
    /// Why the last apply stopped short, until an apply converges.
    pub last_error: Option<String>,
    /// When the cluster was recorded.
    pub created_at: Timestamp,
    /// When the row last changed.
    pub updated_at: Timestamp,
}

impl ClusterRecord {
    /// How long deletion has been running at `now`, if it has started.
    pub fn deleting_for(&self, now: Timestamp) -> Option<Duration> {
        self.deletion_started_at
            .map(|started| now.duration_since(started))
    }
}

/// What vkube records about one node: the fields a caller writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    /// The node (and VM) name, unique within the cluster.
    pub name: String,
    /// The node pool it belongs to.
    pub pool: String,
    /// Its index within the pool; unique per pool.
    pub index: u32,
    /// The failure domain it was placed in, when the cluster has several.
    pub domain: Option<String>,
    /// The VM's managed object id (`vm-42`), once the clone has returned.
    pub vm_id: Option<String>,
    /// Its leased address, once allocated.
    pub ip: Option<IpAddr>,
    /// How far vkube got.
    pub phase: NodePhase,
    /// Hash of the node's part of the spec, to notice needed changes.
    pub spec_hash: String,
}

/// A stored node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    /// The cluster it belongs to.
    pub cluster: String,
    /// What was recorded.
    #[serde(flatten)]
    pub node: Node,
    /// When the node was first recorded.
    pub created_at: Timestamp,
    /// When the record last changed.
    pub updated_at: Timestamp,
}

/// Whether [`ClusterStore::remove_cluster`] may drop a cluster whose node
/// records say VMs may remain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForceDelete {
    /// Only if no node records remain (every VM's deletion was observed).
    No,
    /// Also when deletion has been under way for at least this long
    /// (`--force`; use [`ForceDelete::if_stuck`] for the 15-minute rule).
    IfStuckFor(Duration),
    /// Always (`--force --now`).
    Now,
}

impl ForceDelete {
    /// `IfStuckFor(FORCE_DELETE_AFTER)`: `--force` with the 15-minute rule.
    pub const fn if_stuck() -> Self {
        ForceDelete::IfStuckFor(FORCE_DELETE_AFTER)
    }
}

/// What [`ClusterStore::remove_cluster`] removed; the nodes and open
/// intents tell the caller which vCenter objects may remain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedCluster {
    /// The cluster as it was.
    pub cluster: ClusterRecord,
    /// Node records that remained (VMs that may still exist when forced).
    pub nodes: Vec<NodeRecord>,
    /// Intents never completed (actions that may be half-done).
    pub open_intents: Vec<Intent>,
    /// Leases released.
    pub released_leases: Vec<Lease>,
}

/// What [`ClusterStore::delete_node`] removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedNode {
    /// The node record, if there was one.
    pub node: Option<NodeRecord>,
    /// The node's leases, released with it.
    pub released_leases: Vec<Lease>,
}

text_enum! {
    /// How an add-on reached the cluster. Stored as text.
    pub enum AddonDelivery {
        /// Written into the first control-plane node's bootstrap data; that
        /// node applies it after `kubeadm init`.
        Bootstrap,
        /// Applied by vkube through the API server (server-side apply).
        Applied,
        /// A changed version is rendered but could not be applied yet (API
        /// server unreachable); the next apply retries.
        Pending,
    }
}

/// vkube's record of one add-on of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddonRecord {
    /// `cni`, `cpi`, `csi`, `storage-classes`.
    pub addon: String,
    /// Component, e.g. `cilium`.
    pub component: String,
    /// Upstream version.
    pub version: String,
    /// SHA-256 of the rendered manifest that was delivered (or is pending).
    pub digest: String,
    /// How it was delivered.
    pub delivery: AddonDelivery,
    /// The node that applies it, for bootstrap delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Last problem, for pending updates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When recorded.
    pub updated_at: Timestamp,
}

/// Clusters and their node records.
///
/// Every method runs in its own transaction (all or nothing, also when the
/// process is killed mid-call) and is safe for several processes or
/// replicas sharing one state. Times are passed in, never read.
///
/// Cluster writes take the `version` the caller read and fail with
/// `Conflict` if another writer changed the row since; a write that would
/// change nothing still checks the version but leaves version and
/// `updated_at` alone. Retrying a write whose commit succeeded but whose
/// answer was lost therefore fails with `Conflict`: re-read and compare.
///
/// The writes an apply makes take its [`Fence`] instead of the cluster
/// name and fail with `LockLost`, changing nothing, once the apply lock
/// changed hands (see [`Fence`] for which writes are fenced).
#[async_trait]
pub trait ClusterStore: Send + Sync {
    /// Records the fence's cluster, new, in phase `Pending` at version 1.
    ///
    /// Idempotent for one `uid`: if `name` already exists with the same
    /// `uid` (a retry after a lost answer), returns the stored record
    /// unchanged. Fails with `ClusterExists` if it exists with another uid,
    /// or `Invalid` for an unusable name or a uid used by another cluster.
    async fn create_cluster(
        &self,
        fence: &Fence,
        uid: &str,
        spec_yaml: &str,
        spec_hash: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord>;

    /// One cluster, or `ClusterNotFound`.
    async fn cluster(&self, name: &str) -> Result<ClusterRecord>;

    /// All clusters, by name.
    async fn clusters(&self) -> Result<Vec<ClusterRecord>>;

    /// Replaces the desired spec. Fails with `Conflict`, `ClusterNotFound`,
    /// `ClusterDeleting` once deletion has started, or `LockLost`.
    async fn update_cluster_spec(
        &self,
        fence: &Fence,
        expected_version: u64,
        spec_yaml: &str,
        spec_hash: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord>;

    /// Sets the phase. `Deleting` and `Deleted` also start deletion (as
    /// [`mark_deleting`](Self::mark_deleting)); once it has started, any
    /// other phase fails with `ClusterDeleting`. Fails with `Conflict`,
    /// `ClusterNotFound` or `LockLost`.
    async fn set_cluster_phase(
        &self,
        fence: &Fence,
        expected_version: u64,
        phase: ClusterPhase,
        now: Timestamp,
    ) -> Result<ClusterRecord>;

    /// Sets the phase together with the last error: `Some` records why an
    /// apply stopped short (at most [`LAST_ERROR_MAX`] bytes are kept, cut
    /// at a character boundary), `None` clears it. Otherwise as
    /// [`set_cluster_phase`](Self::set_cluster_phase), which leaves the
    /// last error alone.
    async fn set_cluster_status(
        &self,
        fence: &Fence,
        expected_version: u64,
        phase: ClusterPhase,
        last_error: Option<&str>,
        now: Timestamp,
    ) -> Result<ClusterRecord>;

    /// Records the instance UUID of the cluster's vCenter. Idempotent for
    /// the same UUID; fails with `VcenterMismatch` when another one is
    /// recorded already (it never changes), `Invalid` for an unusable
    /// UUID, or `Conflict`, `ClusterNotFound`, `ClusterDeleting` (once
    /// deletion started), `LockLost`.
    async fn set_cluster_vcenter(
        &self,
        fence: &Fence,
        expected_version: u64,
        vcenter_uuid: &str,
        now: Timestamp,
    ) -> Result<ClusterRecord>;

    /// Starts deletion: phase `Deleting` (unless already `Deleted`) and
    /// `deletion_started_at = now` if not yet set. Takes no version, since
    /// the user's decision wins over a concurrent apply (whose next write
    /// then fails with `Conflict`). Idempotent: calling it again keeps the
    /// first start time, so the 15-minute rule counts from the first
    /// `vkube cluster delete`.
    async fn mark_deleting(&self, name: &str, now: Timestamp) -> Result<ClusterRecord>;

    /// Removes the cluster with its nodes, intents, events and apply lock,
    /// and releases its IP leases, in one transaction.
    ///
    /// With node records left, `force` decides: `No` fails with
    /// `ClusterHasNodes`; `IfStuckFor(d)` fails with `DeletionNotStuck`
    /// unless deletion started at least `d` before `now`; `Now` always
    /// proceeds. Fails with `ClusterNotFound` if it is already gone (a
    /// retry after a lost answer may treat that as success).
    async fn remove_cluster(
        &self,
        name: &str,
        force: ForceDelete,
        now: Timestamp,
    ) -> Result<RemovedCluster>;

    /// Creates or replaces the record of one node, keeping `created_at`.
    /// Idempotent: writing the same values again changes nothing, not even
    /// `updated_at`. Fails with `ClusterNotFound`, `Invalid` for an
    /// unusable node name, or `NodeClash` when another node of the cluster
    /// already has the same `vm_id` or the same pool and index, or
    /// `LockLost`.
    async fn upsert_node(&self, fence: &Fence, node: &Node, now: Timestamp) -> Result<NodeRecord>;

    /// One node record, or `None`. Fails with `ClusterNotFound`.
    async fn node(&self, cluster: &str, node: &str) -> Result<Option<NodeRecord>>;

    /// The cluster's node records, by pool then index. Fails with
    /// `ClusterNotFound`.
    async fn nodes(&self, cluster: &str) -> Result<Vec<NodeRecord>>;

    /// Deletes one node record and releases the node's leases together, so
    /// neither can outlive the other. Call it only after the VM's deletion
    /// has been observed. Idempotent: a missing record (or cluster) is not
    /// an error, and leases of the node are released either way. Fails
    /// with `LockLost`.
    async fn delete_node(&self, fence: &Fence, node: &str) -> Result<RemovedNode>;

    /// The secret `name` of `cluster`, storing `value` first if there is
    /// none yet. The first writer wins, so concurrent or repeated applies
    /// all use the same key material. Returns the stored value.
    async fn ensure_secret(&self, cluster: &str, name: &str, value: &str) -> Result<String>;

    /// The secret `name` of `cluster`, if stored.
    async fn secret(&self, cluster: &str, name: &str) -> Result<Option<String>>;

    /// Records the cluster's add-ons: each record replaces the one of the
    /// same `addon` (others are kept). Fails with `ClusterNotFound` or
    /// `LockLost`.
    async fn record_addons(&self, fence: &Fence, records: &[AddonRecord]) -> Result<()>;

    /// The cluster's add-on records, by addon. Fails with `ClusterNotFound`.
    async fn addons(&self, cluster: &str) -> Result<Vec<AddonRecord>>;

    /// Replaces the secret `name` of `cluster` with `value` if it still
    /// holds `expected` (compare-and-set, e.g. renewing an expired
    /// bootstrap token). Returns the value stored afterwards: `value`, or
    /// what another writer put there first. Fails with `ClusterNotFound`.
    async fn replace_secret(
        &self,
        cluster: &str,
        name: &str,
        expected: &str,
        value: &str,
    ) -> Result<String>;
}
