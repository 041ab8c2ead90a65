//! Planning: from the desired [`ClusterSpec`], the [`ObservedCluster`]
//! (one PropertyCollector read of the cluster folder) and the cluster's
//! address leases to a [`Plan`]: the next batch of safe [`Step`]s.
//!
//! Pure and deterministic: the same inputs give the same plan, so a rerun
//! after a crash recomputes what is left. Executing steps, waiting for
//! Kubernetes readiness and storing leases belong to `vkube-vsphere`,
//! `vkube-store` and `vkube-runtime`.
//!
//! # Guarantees
//!
//! - An empty plan means converged: every group has its replicas, all with
//!   the current spec hash, in the right domain, powered on, sized right.
//! - Node `i` of a group is placed in `domains[i % len]`; new nodes take the
//!   index after the group's highest, so a group's indices stay one
//!   contiguous run (deletions only ever take the oldest stale or the
//!   newest nodes) and round-robin stays balanced.
//! - Scale-down deletes stale nodes first (oldest first), then the newest.
//! - Rolling replacement (spec hash or domain differs) handles one node at a
//!   time across the whole cluster, control plane first: a pass either
//!   creates one surge node with the next index, or, once the surge node
//!   exists, deletes the oldest stale node (`DeleteReason::Replaced`).
//! - Worker pools are not planned at all while the control plane is not
//!   settled (wrong count or stale nodes): workers never join a control
//!   plane older than themselves, and their leases are left alone.
//! - `ReleaseAddress` follows the `DeleteNode` of the same node, so it runs
//!   only once the deletion succeeded; leases left by an interrupted run
//!   (a lease without a VM that no step will create) are released too.
//! - A node record without a VM that no step will create (a run stopped
//!   between destroying a VM and forgetting its node) gets a `ForgetNode`,
//!   which drops its lease with it; a converged plan leaves exactly one
//!   record per VM.
//!
//! # Assumptions
//!
//! - Kubernetes readiness is invisible here. Before running a `DeleteNode`
//!   whose reason is `Replaced { by }`, the runtime waits for node `by` to
//!   be Ready (and drains the old one). Joining control-plane nodes
//!   serialize themselves: their bootstrap retries `kubeadm join`.
//! - The first control-plane node created while no control-plane VM exists
//!   runs `kubeadm init`; every other node joins.
//!
//! # Caveats
//!
//! - Changing labels, taints, IP pools or a domain's inventory paths does
//!   not replace nodes; only the fields of [`NodeGroup::spec_hash`] and a
//!   node's domain assignment do.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::naming::{cluster_folder, parse_vm_name, vip_lease_node, vm_name};
use super::spec::{ClusterSpec, GroupRole, IpAllocation, NodeGroup, Vip};
use crate::ipam::PoolName;

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

/// One vkube VM found in the cluster folder, read from its markers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedNode {
    /// VM name (`vkube.node`).
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
}

/// What vCenter holds for one cluster, with the names of the nodes vkube
/// keeps a record of.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedCluster {
    /// Whether `<folder>/<cluster>` exists.
    pub folder_exists: bool,
    /// Every VM in it that carries this cluster's uid marker.
    pub nodes: Vec<ObservedNode>,
    /// The nodes vkube's state holds a record of (not vCenter's view): a
    /// record whose VM is gone and that no step brings back is forgotten
    /// ([`Step::ForgetNode`]).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub recorded: BTreeSet<String>,
}

/// The cluster's address leases (this cluster's only: any lease passed in
/// that no node uses is released): node name → address. The VIP's lease,
/// if taken from a pool, is under [`vip_lease_node`].
pub type Leases = BTreeMap<String, IpAddr>;

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

/// Why a node is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum DeleteReason {
    /// The group has more nodes than replicas.
    ScaleDown,
    /// A rolling replacement: node `by` took its place; wait for it first.
    Replaced {
        /// The replacement node.
        by: String,
    },
    /// Its node pool is no longer in the spec.
    PoolRemoved,
}

/// One action of a plan. Each is idempotent when executed as documented:
/// create only if absent, delete only if present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "step")]
pub enum Step {
    /// Create the cluster folder.
    CreateFolder {
        /// `<parent>/<cluster>`.
        path: String,
    },
    /// Lease an address for `node` from `pool` and store it.
    AllocateAddress {
        /// Node name (or the VIP's lease name).
        node: String,
        /// Pool to take it from.
        pool: PoolName,
    },
    /// Clone, configure and mark a node VM (not powered on).
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
    /// Fix CPU or memory that drifted from the spec.
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
    /// Power a node on.
    PowerOn {
        /// VM name.
        node: String,
    },
    /// Power off and destroy a node.
    DeleteNode {
        /// VM name.
        node: String,
        /// Why.
        reason: DeleteReason,
    },
    /// Drop the node's address lease.
    ReleaseAddress {
        /// Node name.
        node: String,
    },
    /// Forget a node whose VM is gone: drop vkube's record of it together
    /// with its address lease.
    ForgetNode {
        /// Node name.
        node: String,
    },
}

/// The next batch of steps, in execution order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    /// Steps to run in order; a failed step stops the batch.
    pub steps: Vec<Step>,
}

impl Plan {
    /// Whether the cluster has converged.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Computes the next batch of steps for `spec`; see the module docs for the
/// guarantees. Pure, deterministic and cheap: call it again after every
/// step, or after a crash.
pub fn plan(spec: &ClusterSpec, observed: &ObservedCluster, leases: &Leases) -> Plan {
    let mut planner = Planner {
        spec,
        leases,
        steps: Vec::new(),
        keep_leases: BTreeSet::new(),
        released: BTreeSet::new(),
    };
    if !observed.folder_exists {
        planner.steps.push(Step::CreateFolder {
            path: cluster_folder(&spec.folder, &spec.name),
        });
    }
    let vip_node = vip_lease_node(&spec.name);
    if let Vip::FromPool(pool) = &spec.control_plane.vip {
        planner.keep_leases.insert(vip_node.clone());
        if !leases.contains_key(&vip_node) {
            planner.steps.push(Step::AllocateAddress {
                node: vip_node,
                pool: pool.clone(),
            });
        }
    }

    let groups = spec.groups();
    let group_names: BTreeSet<&str> = groups.iter().map(NodeGroup::name).collect();

    // Nodes whose pool left the spec: all go, newest first.
    let mut removed: Vec<&ObservedNode> = observed
        .nodes
        .iter()
        .filter(|n| !group_names.contains(n.pool.as_str()))
        .collect();
    removed.sort_by(|a, b| a.pool.cmp(&b.pool).then(b.index.cmp(&a.index)));
    for node in removed {
        planner.delete(node, DeleteReason::PoolRemoved);
    }

    let mut rolling = false;
    let mut control_plane_settled = true;
    let mut skipped_groups: BTreeSet<&str> = BTreeSet::new();
    for group in &groups {
        let members: Vec<&ObservedNode> = observed
            .nodes
            .iter()
            .filter(|n| n.pool == group.name())
            .collect();
        if group.role() == GroupRole::Worker && !control_plane_settled {
            skipped_groups.insert(group.name());
            planner
                .keep_leases
                .extend(members.iter().map(|n| n.name.clone()));
            continue;
        }
        let settled = planner.plan_group(group, members, &mut rolling);
        if group.role() == GroupRole::ControlPlane {
            control_plane_settled = settled;
        }
    }

    // Records nothing stands for: a VM destroyed by a run that stopped
    // before it forgot the node. Workers waiting for the control plane
    // keep theirs, as they keep their leases.
    let pool_names: Vec<&str> = groups.iter().map(NodeGroup::name).collect();
    let in_skipped_group = |node: &str| {
        parse_vm_name(&spec.name, &pool_names, node)
            .is_some_and(|(group, _)| skipped_groups.contains(group))
    };
    let observed_names: BTreeSet<&str> = observed.nodes.iter().map(|n| n.name.as_str()).collect();
    for node in &observed.recorded {
        if observed_names.contains(node.as_str())
            || planner.keep_leases.contains(node)
            || in_skipped_group(node)
        {
            continue;
        }
        planner.steps.push(Step::ForgetNode { node: node.clone() });
        planner.released.insert(node.clone());
    }

    // Leases nothing will use: left by an interrupted run or a scale-down.
    for node in leases.keys() {
        if planner.keep_leases.contains(node) || planner.released.contains(node) {
            continue;
        }
        if !in_skipped_group(node) {
            planner
                .steps
                .push(Step::ReleaseAddress { node: node.clone() });
        }
    }
    Plan {
        steps: planner.steps,
    }
}

struct Planner<'a> {
    spec: &'a ClusterSpec,
    leases: &'a Leases,
    steps: Vec<Step>,
    /// Nodes that exist or are being created and keep their lease.
    keep_leases: BTreeSet<String>,
    /// Nodes whose lease a step of this plan releases.
    released: BTreeSet<String>,
}

impl Planner<'_> {
    /// Plans one group; returns whether it is settled (right count and no
    /// stale node) as observed at the start of this pass.
    fn plan_group(
        &mut self,
        group: &NodeGroup<'_>,
        mut members: Vec<&ObservedNode>,
        rolling: &mut bool,
    ) -> bool {
        members.sort_by_key(|n| n.index);
        let hash = group.spec_hash();
        let is_fresh = |n: &ObservedNode| {
            n.spec_hash == hash && n.domain == group.domain_for(n.index).as_str()
        };
        let (fresh, stale): (Vec<&ObservedNode>, Vec<&ObservedNode>) =
            members.iter().partition(|n| is_fresh(n));
        let count = members.len() as u32;
        let replicas = group.replicas();
        let mut next_index = members.last().map_or(0, |n| n.index + 1);
        let mut deleted: BTreeSet<&str> = BTreeSet::new();
        let mut creates: Vec<(u32, NodeRole)> = Vec::new();
        let mut first_control_plane = group.role() == GroupRole::ControlPlane && members.is_empty();
        let mut role = || match group.role() {
            GroupRole::Worker => NodeRole::Worker,
            GroupRole::ControlPlane if std::mem::take(&mut first_control_plane) => NodeRole::Init,
            GroupRole::ControlPlane => NodeRole::ControlPlane,
        };

        if count < replicas {
            for _ in count..replicas {
                creates.push((next_index, role()));
                next_index += 1;
            }
        } else if count > replicas {
            let excess = (count - replicas) as usize;
            let newest_fresh = fresh.last().map(|n| n.name.clone());
            let mut victims: Vec<(&ObservedNode, DeleteReason)> = Vec::new();
            for node in stale.iter().take(excess) {
                let reason = match &newest_fresh {
                    Some(by) => DeleteReason::Replaced { by: by.clone() },
                    None => DeleteReason::ScaleDown,
                };
                victims.push((node, reason));
            }
            let remaining = excess - victims.len();
            for node in fresh.iter().rev().take(remaining) {
                victims.push((node, DeleteReason::ScaleDown));
            }
            if !stale.is_empty() {
                *rolling = true;
            }
            for (node, _) in &victims {
                deleted.insert(node.name.as_str());
            }
            // Power-ons and resizes of survivors come first, then deletions.
            self.tend(group, &members, &deleted, &hash);
            for (node, reason) in victims {
                self.delete(node, reason);
            }
            return false;
        } else if !stale.is_empty() && !*rolling {
            creates.push((next_index, role()));
            *rolling = true;
        } else if !stale.is_empty() {
            // Another group is rolling: wait our turn.
        }

        self.tend(group, &members, &deleted, &hash);
        for (index, role) in creates {
            self.create(group, index, role, &hash);
        }
        count == replicas && stale.is_empty()
    }

    /// Power-ons and resizes for the nodes that stay.
    fn tend(
        &mut self,
        group: &NodeGroup<'_>,
        members: &[&ObservedNode],
        deleted: &BTreeSet<&str>,
        hash: &str,
    ) {
        for node in members
            .iter()
            .filter(|n| !deleted.contains(n.name.as_str()))
        {
            self.keep_leases.insert(node.name.clone());
            if node.spec_hash == hash
                && (node.cpu != group.cpu() || node.memory_mib != group.memory_mib())
            {
                self.steps.push(Step::Reconfigure {
                    node: node.name.clone(),
                    cpu: group.cpu(),
                    memory_mib: group.memory_mib(),
                });
            }
            if node.power_state != PowerState::PoweredOn {
                self.steps.push(Step::PowerOn {
                    node: node.name.clone(),
                });
            }
        }
    }

    fn create(&mut self, group: &NodeGroup<'_>, index: u32, role: NodeRole, hash: &str) {
        let node = vm_name(&self.spec.name, group.name(), index);
        let domain = group.domain_for(index);
        self.keep_leases.insert(node.clone());
        if self.spec.ip_allocation == IpAllocation::Static && !self.leases.contains_key(&node) {
            let pool = self
                .spec
                .domain(domain)
                .and_then(|d| d.ip_pool.clone())
                .expect(
                    "validation requires an ipPool on every used domain with static allocation",
                );
            self.steps.push(Step::AllocateAddress {
                node: node.clone(),
                pool,
            });
        }
        self.steps.push(Step::CreateNode {
            node: node.clone(),
            pool: group.name().to_owned(),
            index,
            domain: domain.to_string(),
            role,
            spec_hash: hash.to_owned(),
            cpu: group.cpu(),
            memory_mib: group.memory_mib(),
            disk_gib: group.disk_gib(),
        });
        self.steps.push(Step::PowerOn { node });
    }

    fn delete(&mut self, node: &ObservedNode, reason: DeleteReason) {
        self.steps.push(Step::DeleteNode {
            node: node.name.clone(),
            reason,
        });
        if self.leases.contains_key(&node.name) {
            self.steps.push(Step::ReleaseAddress {
                node: node.name.clone(),
            });
            self.released.insert(node.name.clone());
        }
    }
}
