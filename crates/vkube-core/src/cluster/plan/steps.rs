//! What a plan says: its [`Step`]s, each with the observation that shows it
//! done on the next pass, and its [`Hold`]s, what it waits for.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ipam::PoolName;

/// How a new node bootstraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeRole {
    /// The first control-plane node: `kubeadm init`.
    Init,
    /// A further control-plane node: `kubeadm join --control-plane`.
    ControlPlane,
    /// A worker: `kubeadm join`.
    Worker,
}

/// Why a node (its VM, Node object or etcd member) is removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum DeleteReason {
    /// The group has more nodes than replicas.
    ScaleDown,
    /// A rolling replacement: node `by` took its place. When the old node is
    /// known to Kubernetes, the plan only removes it once `by` is Ready.
    Replaced {
        /// The replacement node.
        by: String,
    },
    /// Its node pool is no longer in the spec.
    PoolRemoved,
    /// The group's health check found it unhealthy.
    Unhealthy {
        /// Which check, e.g. `Ready=Unknown for 7m, longer than 5m`.
        why: String,
    },
    /// Its VM is gone (deleted outside vkube): only its Node object or etcd
    /// member is left.
    VmGone,
}

impl fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeleteReason::ScaleDown => f.write_str("scale-down"),
            DeleteReason::Replaced { by } => write!(f, "replaced by `{by}`"),
            DeleteReason::PoolRemoved => f.write_str("its pool left the spec"),
            DeleteReason::Unhealthy { why } => write!(f, "unhealthy: {why}"),
            DeleteReason::VmGone => f.write_str("its VM is gone"),
        }
    }
}

/// One action of a plan. Each is idempotent when executed as documented
/// (create only if absent, delete only if present), and each has a
/// done-condition the next pass observes, so a run killed anywhere resumes
/// at the first step not done.
///
/// Steps naming the same node run in plan order, each only after the one
/// before it succeeded (a failed step stops that node's later steps); the
/// removal of a node is `DrainNode` → `RemoveEtcdMember` →
/// `DeleteNodeObject` → `DeleteNode` → `ReleaseAddress`, with the steps
/// already done left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "step")]
pub enum Step {
    /// Create the cluster folder. Done: `folder_exists`.
    CreateFolder {
        /// `<parent>/<cluster>`.
        path: String,
    },
    /// Lease an address for `node` from `pool` and store it. Done: the lease
    /// is in `Leases`.
    AllocateAddress {
        /// Node name (or the VIP's lease name).
        node: String,
        /// Pool to take it from.
        pool: PoolName,
    },
    /// Clone, configure and mark a node VM (not powered on). Done: the VM is
    /// observed.
    #[serde(rename_all = "camelCase")]
    CreateNode {
        /// VM name.
        node: String,
        /// Node group (`cp` or pool name).
        pool: String,
        /// Index within the group.
        index: u32,
        /// Placement domain.
        domain: String,
        /// How it bootstraps.
        role: NodeRole,
        /// Group spec hash, for the `vkube.spec-hash` marker.
        spec_hash: String,
        /// vCPUs.
        cpu: u32,
        /// Memory in MiB.
        #[serde(rename = "memoryMiB")]
        memory_mib: u32,
        /// Disk size in GiB, `None` to keep the template's.
        #[serde(rename = "diskGiB", default, skip_serializing_if = "Option::is_none")]
        disk_gib: Option<u32>,
    },
    /// Fix CPU or memory that drifted from the spec. Done: the VM's size.
    #[serde(rename_all = "camelCase")]
    Reconfigure {
        /// VM name.
        node: String,
        /// vCPUs.
        cpu: u32,
        /// Memory in MiB.
        #[serde(rename = "memoryMiB")]
        memory_mib: u32,
    },
    /// Power a node on. Done: `PoweredOn`.
    PowerOn {
        /// VM name.
        node: String,
    },
    /// Cordon the node and evict its pods through the Eviction API
    /// (honouring PodDisruptionBudgets; DaemonSet and mirror pods stay), as
    /// `kubectl drain` does. Done: [`RegisteredNode::drained`], which the
    /// runtime records when the drain succeeded (or the Node object is gone).
    ///
    /// [`RegisteredNode::drained`]: super::RegisteredNode::drained
    #[serde(rename_all = "camelCase")]
    DrainNode {
        /// Node name.
        node: String,
        /// Why the node goes.
        reason: DeleteReason,
        /// Its `Ready` condition is `Unknown`: the kubelet stopped posting, so
        /// evicted pods never finish terminating there. Do not wait for them
        /// (their deletion is accepted; the Node object's removal frees
        /// them), as Cluster API does for unreachable nodes.
        kubelet_unresponsive: bool,
    },
    /// Remove the node's etcd member (a control-plane node), re-checking
    /// quorum at that moment. Done: the name is not in `EtcdView::members`.
    RemoveEtcdMember {
        /// Node (member) name.
        node: String,
        /// Why.
        reason: DeleteReason,
    },
    /// Delete the node's Node object. Done: `KubeNode::Deregistered` (or no
    /// longer in `orphan_node_objects`).
    DeleteNodeObject {
        /// Node name.
        node: String,
        /// Why.
        reason: DeleteReason,
    },
    /// Power off and destroy a node's VM. Done: the VM is not observed.
    DeleteNode {
        /// VM name.
        node: String,
        /// Why.
        reason: DeleteReason,
    },
    /// Drop the node's address lease. Done: the lease is gone.
    ReleaseAddress {
        /// Node name.
        node: String,
    },
    /// Forget a node whose VM is gone: drop vkube's record of it together
    /// with its address lease. Done: the record is gone.
    ForgetNode {
        /// Node name.
        node: String,
    },
    /// Uncordon a node vkube drained that no longer goes (the spec changed
    /// back before its removal finished). Done: `cordoned` is false (the
    /// runtime clears its `drained` record with it).
    UncordonNode {
        /// Node name.
        node: String,
    },
}

impl Step {
    /// The node the step is about (the VIP's lease name for its address),
    /// `None` for the folder.
    pub fn node(&self) -> Option<&str> {
        match self {
            Step::CreateFolder { .. } => None,
            Step::AllocateAddress { node, .. }
            | Step::CreateNode { node, .. }
            | Step::Reconfigure { node, .. }
            | Step::PowerOn { node }
            | Step::DrainNode { node, .. }
            | Step::RemoveEtcdMember { node, .. }
            | Step::DeleteNodeObject { node, .. }
            | Step::DeleteNode { node, .. }
            | Step::ReleaseAddress { node }
            | Step::ForgetNode { node }
            | Step::UncordonNode { node } => Some(node),
        }
    }
}

/// Why part of the plan waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum HoldReason {
    /// Until `node` (a replacement, or another control-plane node) is Ready.
    WaitingForReady {
        /// The node waited for.
        node: String,
    },
    /// Until control-plane node `node` is a healthy etcd member (joined).
    WaitingForEtcdMember {
        /// The node waited for.
        node: String,
    },
    /// Until the removal of control-plane node `node` is finished: one
    /// control-plane node at a time.
    WaitingForRemoval {
        /// The node being removed.
        node: String,
    },
    /// The control plane does not have exactly its replicas (a node is
    /// being added or removed): that change finishes before another starts.
    #[serde(rename_all = "camelCase")]
    ControlPlaneChanging {
        /// Nodes now.
        nodes: u32,
        /// Replicas.
        replicas: u32,
    },
    /// The API server was not reached this pass: nodes Kubernetes knows are
    /// not removed, and a control plane Kubernetes knows is not changed.
    ApiUnreachable,
    /// The API server answered but etcd's members could not be read.
    EtcdUnknown,
    /// The change would risk etcd's quorum.
    EtcdQuorum {
        /// Why, naming the members.
        why: String,
    },
    /// More of the group's nodes are unhealthy than `maxUnhealthy` allows:
    /// none is replaced (something larger than a node is wrong).
    #[serde(rename_all = "camelCase")]
    MaxUnhealthy {
        /// Unhealthy nodes.
        unhealthy: Vec<String>,
        /// Nodes in the group.
        total: usize,
        /// The spec's `maxUnhealthy` (`40%`, `2`).
        max_unhealthy: String,
        /// How many that allows of `total`.
        allowed: usize,
    },
}

impl fmt::Display for HoldReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HoldReason::WaitingForReady { node } => write!(f, "waiting for `{node}` to be Ready"),
            HoldReason::WaitingForEtcdMember { node } => {
                write!(f, "waiting for `{node}` to join etcd as a healthy member")
            }
            HoldReason::WaitingForRemoval { node } => write!(
                f,
                "waiting for the removal of `{node}` to finish (one control-plane node at a time)"
            ),
            HoldReason::ControlPlaneChanging { nodes, replicas } if nodes < replicas => write!(
                f,
                "the control plane has {nodes} of its {replicas} nodes: it is completed first"
            ),
            HoldReason::ControlPlaneChanging { nodes, replicas } => write!(
                f,
                "the control plane has {nodes} nodes for {replicas} replicas: the change under way finishes first"
            ),
            HoldReason::ApiUnreachable => f.write_str(
                "the API server is unreachable: a node Kubernetes knows is not removed, nor the control plane changed, without it",
            ),
            HoldReason::EtcdUnknown => f.write_str(
                "etcd's members could not be read: the control plane is not changed without them",
            ),
            HoldReason::EtcdQuorum { why } => write!(f, "etcd quorum: {why}"),
            HoldReason::MaxUnhealthy {
                unhealthy,
                total,
                max_unhealthy,
                allowed,
            } => write!(
                f,
                "{} of {total} nodes are unhealthy ({}), more than maxUnhealthy {max_unhealthy} allows ({allowed}): none is replaced",
                unhealthy.len(),
                unhealthy.join(", ")
            ),
        }
    }
}

/// Something the plan does not do yet, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hold {
    /// Node group (`cp` or a pool name).
    pub group: String,
    /// The node whose removal or creation waits; `None` when the whole
    /// group's remediation does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why.
    pub reason: HoldReason,
}

impl fmt::Display for Hold {
    /// `` `demo-cp-0`: waiting for `demo-cp-3` to be Ready ``.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(node) => write!(f, "`{node}`: {}", self.reason),
            None => write!(f, "group `{}`: {}", self.group, self.reason),
        }
    }
}

/// The next batch of steps, in execution order, and what waits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    /// Steps to run in order; a failed step stops the later steps of its
    /// node.
    pub steps: Vec<Step>,
    /// What the plan waits for (Kubernetes readiness, etcd, the API server,
    /// health limits): re-observe and plan again later.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
}

impl Plan {
    /// Whether there is no step to run now (there may be holds).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether the cluster has converged: no step and nothing held.
    pub fn is_converged(&self) -> bool {
        self.steps.is_empty() && self.holds.is_empty()
    }
}
