//! What the planner sees: each node's VM as vCenter reports it, its
//! Kubernetes side as the runtime last observed it ([`KubeNode`]), the API
//! server's reachability, etcd's members, and Node objects without a VM.
//!
//! Every Kubernetes field defaults to "never seen": a cluster Kubernetes has
//! never been asked about (the simulator's) plans exactly as vkube did
//! before it knew about Kubernetes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::health_check::ConditionStatus;

/// A VM's power state as vSphere reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PowerState {
    /// Running.
    PoweredOn,
    /// Stopped.
    PoweredOff,
    /// Suspended.
    Suspended,
}

/// One vkube VM found in the cluster folder, read from its markers, with
/// its Kubernetes side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedNode {
    /// VM name (`vkube.node`); also its Node object's and etcd member's name.
    pub name: String,
    /// Node group: `cp` or a pool name (`vkube.pool`).
    pub pool: String,
    /// Placement domain (`vkube.domain`).
    pub domain: String,
    /// Spec hash at creation (`vkube.spec-hash`).
    pub spec_hash: String,
    /// Power state.
    pub power_state: PowerState,
    /// vCPUs.
    pub cpu: u32,
    /// Memory in MiB.
    #[serde(rename = "memoryMiB")]
    pub memory_mib: u32,
    /// Index within the group (`vkube.index`).
    pub index: u32,
    /// The node as Kubernetes knows it (default: never registered).
    #[serde(default)]
    pub kube: KubeNode,
    /// How long ago the VM was last powered on, when known (vSphere's
    /// `runtime.bootTime`, or the runtime's record of its power-on); `None`
    /// when unknown or powered off. Only `nodeStartupTimeout` reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub powered_on_for: Option<Duration>,
}

impl ObservedNode {
    /// Whether this is a control-plane node.
    pub fn is_control_plane(&self) -> bool {
        self.pool == crate::cluster::CONTROL_PLANE_GROUP
    }
}

/// A node's Kubernetes side, as the runtime builds it from the Node list of
/// this pass and its own records of earlier passes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum KubeNode {
    /// No Node object was ever seen for it (Cluster API's nil `nodeRef`):
    /// a node still booting or joining, one that never joined, or any node
    /// of a cluster whose API server vkube never reached. Removed as a VM
    /// only, without drain.
    #[default]
    NeverRegistered,
    /// Its Node object exists now.
    Registered(RegisteredNode),
    /// It was registered before, but the API server could not be asked
    /// this pass ([`ApiView::Unreachable`]).
    #[serde(rename_all = "camelCase")]
    Unreachable {
        /// Whether it was `Ready` when last seen.
        last_seen_ready: bool,
    },
    /// It was registered before and its Node object is gone now (vkube's
    /// `DeleteNodeObject` ran, or someone deleted it). The kubelet does not
    /// register again until it restarts: the node serves no pods.
    Deregistered,
}

impl KubeNode {
    /// Whether Kubernetes knows (or knew) the node: anything but
    /// [`KubeNode::NeverRegistered`].
    pub fn is_known(&self) -> bool {
        !matches!(self, KubeNode::NeverRegistered)
    }

    /// Whether the Node object exists and is `Ready=True`.
    pub fn is_ready(&self) -> bool {
        matches!(self, KubeNode::Registered(node) if node.ready == ConditionStatus::True)
    }

    /// The registered view, if the Node object exists.
    pub fn registered(&self) -> Option<&RegisteredNode> {
        match self {
            KubeNode::Registered(node) => Some(node),
            _ => None,
        }
    }
}

/// A node whose Node object exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredNode {
    /// The `Ready` condition's status; `Unknown` while the kubelet has not
    /// posted one yet.
    pub ready: ConditionStatus,
    /// How long `ready` has held: now minus the condition's
    /// `lastTransitionTime` (since registration when there is no `Ready`
    /// condition yet).
    pub ready_held_for: Duration,
    /// The node's other conditions (`DiskPressure`, a node problem
    /// detector's, …), for health checks that name them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_conditions: Vec<ObservedCondition>,
    /// `status.nodeInfo.kubeletVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubelet_version: Option<String>,
    /// `spec.unschedulable`.
    #[serde(default)]
    pub cordoned: bool,
    /// vkube drained it (a `DrainNode` step succeeded) and it has stayed
    /// cordoned since: the runtime's record, cleared when the node is
    /// uncordoned by anyone.
    #[serde(default)]
    pub drained: bool,
}

impl RegisteredNode {
    /// A node that is `Ready=True` since `held_for`, not cordoned.
    pub fn ready(held_for: Duration) -> RegisteredNode {
        RegisteredNode {
            ready: ConditionStatus::True,
            ready_held_for: held_for,
            other_conditions: Vec::new(),
            kubelet_version: None,
            cordoned: false,
            drained: false,
        }
    }

    /// The status of condition `kind` and how long it has held.
    pub fn condition(&self, kind: &str) -> Option<(ConditionStatus, Duration)> {
        if kind == crate::cluster::READY_CONDITION {
            return Some((self.ready, self.ready_held_for));
        }
        self.other_conditions
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| (c.status, c.held_for))
    }
}

/// One node condition other than `Ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedCondition {
    /// `type`, e.g. `DiskPressure`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its status.
    pub status: ConditionStatus,
    /// How long it has held (now minus `lastTransitionTime`).
    pub held_for: Duration,
}

/// Whether the API server answered this pass (through the VIP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ApiView {
    /// It was not reached (or not asked: no cluster yet, or no kubeconfig):
    /// node views are the last known ones.
    #[default]
    Unreachable,
    /// The Node list of this pass was read.
    Reachable,
}

/// etcd's membership, read this pass (through the API server).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdView {
    /// Every member, by its node's name (kubeadm names members after their
    /// node). A member added but not started yet has no name in etcd: the
    /// runtime must name it after the node its peer URL's address belongs
    /// to, or else by that peer URL (it then counts as a member without a
    /// VM).
    pub members: Vec<String>,
    /// The members that answered healthy.
    pub healthy: BTreeSet<String>,
}

/// What vCenter and Kubernetes hold for one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedCluster {
    /// Whether `<folder>/<cluster>` exists.
    pub folder_exists: bool,
    /// Every VM in it that carries this cluster's uid marker.
    pub nodes: Vec<ObservedNode>,
    /// Whether the API server answered this pass.
    #[serde(default)]
    pub api: ApiView,
    /// etcd's members and their health; `None` when not read this pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdView>,
    /// Node objects named like this cluster's nodes whose VM is not in
    /// [`nodes`](Self::nodes) (read this pass; empty when the API was not
    /// reached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orphan_node_objects: Vec<String>,
    /// The nodes vkube's state holds a record of (not vCenter's view): a
    /// record whose VM is gone and that no step brings back is forgotten
    /// ([`Step::ForgetNode`](super::Step::ForgetNode)).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub recorded: BTreeSet<String>,
}

impl ObservedCluster {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&ObservedNode> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// The cluster's address leases (this cluster's only: any lease passed in
/// that no node uses is released): node name → address. The VIP's lease,
/// if taken from a pool, is under [`vip_lease_node`](crate::cluster::vip_lease_node).
pub type Leases = BTreeMap<String, IpAddr>;
