//! Planning: from the desired [`ClusterSpec`], the [`ObservedCluster`]
//! (the cluster folder's VMs, and what Kubernetes and etcd said this pass)
//! and the cluster's address leases to a [`Plan`]: the next batch of safe
//! [`Step`]s, and the [`Hold`]s saying what waits and why.
//!
//! Pure and deterministic: the same inputs give the same plan, so a rerun
//! after a crash recomputes what is left. Every step has a done-condition
//! in the observation (see [`Step`]); the runtime observes, plans, runs the
//! steps, and plans again, until the plan [`is_converged`](Plan::is_converged).
//! A plan with holds and no steps means: observe again later (a node
//! becoming Ready, etcd healing, the API server coming back).
//!
//! # What the runtime feeds in
//!
//! - [`ObservedNode::kube`]: from this pass's Node list when the API server
//!   answered (`Registered`, else `Deregistered` for a node it saw
//!   registered before, else `NeverRegistered`); when it did not answer,
//!   `Unreachable` for nodes it saw registered before. `drained` is its own
//!   record of a `DrainNode` that succeeded, dropped when the node is
//!   uncordoned. `powered_on_for` for the startup timeout.
//! - [`ObservedCluster::api`], [`ObservedCluster::etcd`] (members by node
//!   name with their health, read through the API server; `None` when not
//!   read), [`ObservedCluster::orphan_node_objects`].
//!
//! Defaults (`NeverRegistered`, `Unreachable`, no etcd view) plan exactly as
//! vkube did before it read Kubernetes: nothing is drained or waited for.
//!
//! # Guarantees
//!
//! - An empty, hold-free plan means converged: every group has its
//!   replicas, all with the current spec hash, in the right domain, powered
//!   on, sized right, none cordoned by vkube, none unhealthy.
//! - Node `i` of a group is placed in `domains[i % len]`; new nodes take the
//!   index after the group's highest (counting names a Node object or etcd
//!   member still holds), so indices stay one contiguous run.
//! - Scale-down removes stale nodes first (oldest first), then the newest.
//! - Rolling replacement (spec hash or domain differs, or the node can no
//!   longer serve: its Node object is gone, or vkube drained it and removed
//!   its etcd member) handles one node at a time across the whole cluster,
//!   control plane first: a pass creates one surge node with the next
//!   index, and once it exists removes the oldest stale node
//!   (`DeleteReason::Replaced`). Worker pools roll one after the other, one
//!   node at a time (surge 1, across all pools, as before).
//! - Worker pools are not planned at all while the control plane is
//!   changing (too many nodes, stale or remediated nodes): workers never
//!   join a control plane older than themselves, and their leases are left
//!   alone. A control plane that is only being created — nodes missing,
//!   none stale or unhealthy, none known to Kubernetes and etcd not read —
//!   does not hold workers back: they are planned in the same pass (every
//!   node then has the current spec, and `kubeadm join` retries discovery
//!   until the control plane answers).
//! - `ReleaseAddress` follows the `DeleteNode` of the same node; leases no
//!   step will use are released, except those of nodes whose removal holds.
//!
//! # Kubernetes-aware removal
//!
//! A node Kubernetes knows (`Registered`, `Unreachable`) is removed as
//! `DrainNode` → (control plane) `RemoveEtcdMember` → `DeleteNodeObject` →
//! `DeleteNode` → `ReleaseAddress`, leaving out what is done. A
//! `NeverRegistered` node is removed as a VM only (its etcd member too, when
//! etcd lists it). Before any step of a removal, all its guards pass, or
//! none is planned and a [`Hold`] names the node:
//!
//! - the API server answered (for nodes Kubernetes knows);
//! - for `Replaced { by }` of a node Kubernetes knows: `by` is `Ready`
//!   (and, in the control plane, a healthy etcd member);
//! - in the control plane: etcd was read (when Kubernetes knows the control
//!   plane), the member is not the last, and the members left keep a healthy
//!   quorum; and one control-plane removal at a time.
//!
//! # Control-plane additions
//!
//! While no control-plane node is known to Kubernetes and etcd was not read
//! (a new cluster, or the simulator), missing control-plane nodes are
//! created together, as before (kubeadm's join retries serialize them).
//! Once Kubernetes knows the control plane, a control-plane node is only
//! created with the API server and etcd read, every control-plane node at
//! the current spec a healthy etcd member (and, for a rolling surge,
//! `Ready`: no replacement starts while another is not Ready), and etcd
//! keeping its quorum while the new member starts (every member healthy,
//! or the healthy ones a quorum of the grown cluster), one node at a time.
//! Missing nodes do not wait for `Ready`: a new cluster's nodes only become
//! Ready once the CNI is installed, after convergence. Worker nodes are
//! created whatever Kubernetes says, also with the API server unreachable
//! (so `--wait created` works).
//!
//! # Health
//!
//! With the API server answering, a group with a `healthCheck` has its
//! unhealthy nodes replaced (`DeleteReason::Unhealthy`): removed first,
//! as Cluster API's MachineHealthCheck does, then recreated as missing
//! nodes. Workers: every unhealthy node at once, recreated in the same
//! pass. Control plane: one at a time, only while it has its replicas,
//! under the quorum guard; the replacement follows once the member is gone.
//! More unhealthy nodes than `maxUnhealthy` allows: no remediation in that
//! group, and a hold says so. Node objects without a VM are deleted, etcd
//! members without a VM that are not healthy are removed (quorum allowing);
//! VMs deleted outside vkube are recreated as missing nodes.
//!
//! # Assumptions
//!
//! - Steps of one node run in plan order, each after the previous one
//!   succeeded; the runtime's drain honours PodDisruptionBudgets.
//! - The first control-plane node created while no control-plane VM exists
//!   runs `kubeadm init`; every other node joins.
//!
//! # Caveats
//!
//! - Changing labels, taints, IP pools, health checks or a domain's
//!   inventory paths does not replace nodes; only the fields of
//!   [`NodeGroup::spec_hash`] and a node's domain assignment do.
//! - A node the user cordoned that vkube then drains and no longer removes
//!   is uncordoned by vkube.
//! - An etcd member without a VM that still answers healthy is left alone
//!   (its name does not match a node: not vkube's to judge).

mod delete_order;
mod etcd;
mod health;
mod observed;
mod remediation;
mod removal;
mod steps;

use std::collections::BTreeSet;

use super::naming::{cluster_folder, parse_vm_name, vip_lease_node, vm_name};
use super::spec::{ClusterSpec, GroupRole, IpAllocation, NodeGroup, Vip};

pub use delete_order::delete_order;
pub use etcd::quorum_of;
pub use observed::{
    ApiView, EtcdView, KubeNode, Leases, ObservedCluster, ObservedCondition, ObservedNode,
    PowerState, RegisteredNode,
};
pub use steps::{DeleteReason, Hold, HoldReason, NodeRole, Plan, Step};

/// Computes the next batch of steps for `spec`; see the module docs for the
/// guarantees. Pure, deterministic and cheap: call it again after every
/// batch, or after a crash.
pub fn plan(spec: &ClusterSpec, observed: &ObservedCluster, leases: &Leases) -> Plan {
    let mut planner = Planner {
        spec,
        observed,
        leases,
        steps: Vec::new(),
        holds: Vec::new(),
        keep_leases: BTreeSet::new(),
        released: BTreeSet::new(),
        etcd_after: observed.etcd.clone(),
        api_reachable: observed.api == ApiView::Reachable,
        control_plane_known: observed.etcd.is_some()
            || observed
                .nodes
                .iter()
                .any(|n| n.is_control_plane() && n.kube.is_known()),
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
    planner.clean_up_orphans();

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
        planner.remove(node, DeleteReason::PoolRemoved);
    }

    let mut rolling = false;
    let mut workers_may_go = true;
    let mut skipped_groups: BTreeSet<&str> = BTreeSet::new();
    for group in &groups {
        let members: Vec<&ObservedNode> = observed
            .nodes
            .iter()
            .filter(|n| n.pool == group.name())
            .collect();
        if group.role() == GroupRole::Worker && !workers_may_go {
            skipped_groups.insert(group.name());
            planner
                .keep_leases
                .extend(members.iter().map(|n| n.name.clone()));
            continue;
        }
        let state = planner.plan_group(group, members, &mut rolling);
        if group.role() == GroupRole::ControlPlane {
            workers_may_go = match state {
                GroupState::Settled => true,
                GroupState::Growing => !planner.control_plane_known,
                GroupState::Changing => false,
            };
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
    let mut forgotten = Vec::new();
    for node in &observed.recorded {
        let planned = planner
            .steps
            .iter()
            .any(|s| s.node() == Some(node.as_str()));
        if observed_names.contains(node.as_str())
            || planned
            || planner.keep_leases.contains(node)
            || in_skipped_group(node)
        {
            continue;
        }
        forgotten.push(Step::ForgetNode { node: node.clone() });
        planner.released.insert(node.clone());
    }
    planner.steps.extend(forgotten);

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
        holds: planner.holds,
    }
}

/// Where a group stands at the start of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupState {
    /// Its replicas, none stale, nothing remediated.
    Settled,
    /// Only nodes missing (at the current spec), none stale or unhealthy.
    Growing,
    /// Too many nodes, stale ones, or remediated ones.
    Changing,
}

pub(super) struct Planner<'a> {
    spec: &'a ClusterSpec,
    observed: &'a ObservedCluster,
    leases: &'a Leases,
    steps: Vec<Step>,
    holds: Vec<Hold>,
    /// Nodes that exist or are being created and keep their lease.
    keep_leases: BTreeSet<String>,
    /// Nodes whose lease a step of this plan releases.
    released: BTreeSet<String>,
    /// etcd's membership once this plan's member removals are done.
    etcd_after: Option<EtcdView>,
    api_reachable: bool,
    /// Some control-plane node is (or was) known to Kubernetes, or etcd was
    /// read: the control plane is changed with care from now on.
    control_plane_known: bool,
}

/// The nodes of one group as a pass sees them.
struct GroupView<'n> {
    /// Every VM of the group, by index.
    members: Vec<&'n ObservedNode>,
    /// Of those that stay in the count, the ones at the current spec.
    fresh: Vec<&'n ObservedNode>,
    /// The ones to replace.
    stale: Vec<&'n ObservedNode>,
    /// Index of the next node to create.
    next_index: u32,
}

impl Planner<'_> {
    fn hold(&mut self, group: &str, node: Option<&str>, reason: HoldReason) {
        self.holds.push(Hold {
            group: group.to_owned(),
            node: node.map(str::to_owned),
            reason,
        });
    }

    /// Node objects and etcd members whose VM is gone.
    fn clean_up_orphans(&mut self) {
        let has_vm = |name: &str| self.observed.node(name).is_some();
        if self.api_reachable {
            let orphans: BTreeSet<&String> = self
                .observed
                .orphan_node_objects
                .iter()
                .filter(|n| !has_vm(n))
                .collect();
            for node in orphans {
                self.steps.push(Step::DeleteNodeObject {
                    node: node.clone(),
                    reason: DeleteReason::VmGone,
                });
            }
        }
        let Some(etcd) = &self.observed.etcd else {
            return;
        };
        let orphans: Vec<&String> = etcd
            .members
            .iter()
            .filter(|m| !has_vm(m) && !etcd.healthy.contains(*m))
            .collect();
        for member in orphans {
            let after = self.etcd_after.as_mut().expect("read with the view");
            match after.check_removal(member) {
                Ok(()) => {
                    after.remove(member);
                    self.steps.push(Step::RemoveEtcdMember {
                        node: member.clone(),
                        reason: DeleteReason::VmGone,
                    });
                }
                Err(why) => self.hold(
                    super::CONTROL_PLANE_GROUP,
                    Some(member),
                    HoldReason::EtcdQuorum { why },
                ),
            }
        }
    }

    /// A node that can no longer serve, whatever its spec hash: its Node
    /// object is gone, or (control plane) vkube drained it and its etcd
    /// member is gone.
    fn is_spent(&self, node: &ObservedNode) -> bool {
        match &node.kube {
            KubeNode::Deregistered => true,
            KubeNode::Registered(registered) => {
                node.is_control_plane()
                    && registered.drained
                    && self
                        .observed
                        .etcd
                        .as_ref()
                        .is_some_and(|etcd| !etcd.is_member(&node.name))
            }
            _ => false,
        }
    }

    /// The index after the highest of the group's VMs, and of the names
    /// Kubernetes or etcd still hold for it (a VM deleted outside vkube):
    /// a new node never takes the name of a Node object or etcd member that
    /// is still there.
    fn next_index(&self, group: &NodeGroup<'_>, all: &[&ObservedNode]) -> u32 {
        let group_names = [group.name()];
        let remembered = self
            .observed
            .orphan_node_objects
            .iter()
            .chain(self.observed.etcd.iter().flat_map(|e| e.members.iter()))
            .filter_map(|name| parse_vm_name(&self.spec.name, &group_names, name))
            .filter(|(parsed, _)| *parsed == group.name())
            .map(|(_, index)| index);
        all.iter()
            .map(|n| n.index)
            .chain(remembered)
            .map(|index| index + 1)
            .max()
            .unwrap_or(0)
    }

    fn view<'n>(
        &self,
        group: &NodeGroup<'_>,
        all: &[&'n ObservedNode],
        counted: Vec<&'n ObservedNode>,
    ) -> GroupView<'n> {
        let hash = group.spec_hash();
        let is_fresh = |n: &ObservedNode| {
            n.spec_hash == hash
                && n.domain == group.domain_for(n.index).as_str()
                && !self.is_spent(n)
        };
        let (fresh, stale): (Vec<&ObservedNode>, Vec<&ObservedNode>) =
            counted.iter().partition(|n| is_fresh(n));
        GroupView {
            members: counted,
            fresh,
            stale,
            next_index: self.next_index(group, all),
        }
    }

    /// Plans one group; returns its state as observed at the start of
    /// this pass.
    fn plan_group(
        &mut self,
        group: &NodeGroup<'_>,
        mut members: Vec<&ObservedNode>,
        rolling: &mut bool,
    ) -> GroupState {
        members.sort_by_key(|n| n.index);
        let control_plane = group.role() == GroupRole::ControlPlane;
        let hash = group.spec_hash();
        let unhealthy = self.remediation(group, &members);
        if control_plane && !unhealthy.is_empty() {
            // The control plane heals first, one node at a time; its
            // replacement is created once the member is gone.
            let doomed: BTreeSet<&str> = unhealthy.iter().map(|(n, _)| n.name.as_str()).collect();
            self.tend(group, &members, &doomed, &hash);
            for (node, why) in unhealthy {
                self.remove(node, DeleteReason::Unhealthy { why });
            }
            return GroupState::Changing;
        }
        // Workers: the unhealthy go, and are recreated at once as missing.
        let doomed: BTreeSet<&str> = unhealthy.iter().map(|(n, _)| n.name.as_str()).collect();
        for (node, why) in &unhealthy {
            self.remove(node, DeleteReason::Unhealthy { why: why.clone() });
        }
        let counted: Vec<&ObservedNode> = members
            .iter()
            .copied()
            .filter(|n| !doomed.contains(n.name.as_str()))
            .collect();
        let mut view = self.view(group, &members, counted);
        let count = view.members.len() as u32;
        let replicas = group.replicas();
        let mut removing: BTreeSet<&str> = doomed.clone();
        let mut role = role_picker(group.role(), members.is_empty());

        if count > replicas {
            let excess = (count - replicas) as usize;
            let newest_fresh = view.fresh.last().map(|n| n.name.clone());
            let mut victims: Vec<(&ObservedNode, DeleteReason)> = Vec::new();
            for node in view.stale.iter().take(excess) {
                let reason = match &newest_fresh {
                    Some(by) => DeleteReason::Replaced { by: by.clone() },
                    None => DeleteReason::ScaleDown,
                };
                victims.push((node, reason));
            }
            let remaining = excess - victims.len();
            for node in view.fresh.iter().rev().take(remaining) {
                victims.push((node, DeleteReason::ScaleDown));
            }
            if !view.stale.is_empty() {
                *rolling = true;
            }
            removing.extend(victims.iter().map(|(n, _)| n.name.as_str()));
            // Power-ons and resizes of survivors come first, then removals.
            self.tend(group, &view.members, &removing, &hash);
            self.remove_victims(victims);
            return GroupState::Changing;
        }
        let mut creates: Vec<(u32, NodeRole)> = Vec::new();
        if count < replicas {
            // A control plane Kubernetes knows gets one joining node at a time.
            let careful = control_plane && self.control_plane_known;
            let missing = if careful { 1 } else { replicas - count };
            for _ in 0..missing {
                if careful {
                    let node = vm_name(&self.spec.name, group.name(), view.next_index);
                    if let Err(reason) = self.control_plane_addition(&view, &node, false) {
                        self.hold(group.name(), Some(&node), reason);
                        break;
                    }
                }
                creates.push((view.next_index, role()));
                view.next_index += 1;
            }
        } else if !view.stale.is_empty() && !*rolling {
            *rolling = true;
            let node = vm_name(&self.spec.name, group.name(), view.next_index);
            let gate = if control_plane && self.control_plane_known {
                self.control_plane_addition(&view, &node, true)
            } else {
                Ok(())
            };
            match gate {
                Ok(()) => creates.push((view.next_index, role())),
                Err(reason) => self.hold(group.name(), Some(&node), reason),
            }
        } else if !view.stale.is_empty() {
            // Another group is rolling: wait our turn.
        }

        self.tend(group, &view.members, &removing, &hash);
        for (index, role) in creates {
            self.create(group, index, role, &hash);
        }
        match (
            count == replicas,
            view.stale.is_empty() && unhealthy.is_empty(),
        ) {
            (true, true) => GroupState::Settled,
            (false, true) => GroupState::Growing,
            (_, false) => GroupState::Changing,
        }
    }

    /// Removes scale-down and replaced nodes; in the control plane one node
    /// Kubernetes or etcd knows at a time.
    fn remove_victims(&mut self, victims: Vec<(&ObservedNode, DeleteReason)>) {
        let mut control_plane_removal: Option<String> = None;
        for (node, reason) in victims {
            let careful = node.is_control_plane()
                && (node.kube.is_known()
                    || self
                        .etcd_after
                        .as_ref()
                        .is_some_and(|e| e.is_member(&node.name)));
            if careful {
                if let Some(first) = &control_plane_removal {
                    let reason = HoldReason::WaitingForRemoval {
                        node: first.clone(),
                    };
                    self.keep_leases.insert(node.name.clone());
                    self.hold(&node.pool, Some(&node.name), reason);
                    continue;
                }
                control_plane_removal = Some(node.name.clone());
            }
            self.remove(node, reason);
        }
    }

    /// Whether a control-plane node may be created now (the control plane
    /// being known to Kubernetes); else why not.
    fn control_plane_addition(
        &self,
        view: &GroupView<'_>,
        node: &str,
        surge: bool,
    ) -> Result<(), HoldReason> {
        if !self.api_reachable {
            return Err(HoldReason::ApiUnreachable);
        }
        let etcd = self.observed.etcd.as_ref().ok_or(HoldReason::EtcdUnknown)?;
        for current in &view.fresh {
            if surge && !current.kube.is_ready() {
                return Err(HoldReason::WaitingForReady {
                    node: current.name.clone(),
                });
            }
            if !etcd.is_healthy_member(&current.name) {
                return Err(HoldReason::WaitingForEtcdMember {
                    node: current.name.clone(),
                });
            }
        }
        etcd.check_addition(node)
            .map_err(|why| HoldReason::EtcdQuorum { why })
    }

    /// Power-ons, resizes and uncordons for the nodes that stay.
    fn tend(
        &mut self,
        group: &NodeGroup<'_>,
        members: &[&ObservedNode],
        removing: &BTreeSet<&str>,
        hash: &str,
    ) {
        for node in members
            .iter()
            .filter(|n| !removing.contains(n.name.as_str()))
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
            let drained_by_us = node
                .kube
                .registered()
                .is_some_and(|r| r.drained && r.cordoned);
            if drained_by_us && self.api_reachable && !self.is_spent(node) {
                self.steps.push(Step::UncordonNode {
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
}

/// The bootstrap role of each node created in a group: the first of a
/// control plane with no VM at all runs `kubeadm init`.
fn role_picker(role: GroupRole, group_empty: bool) -> impl FnMut() -> NodeRole {
    let mut first_control_plane = role == GroupRole::ControlPlane && group_empty;
    move || match role {
        GroupRole::Worker => NodeRole::Worker,
        GroupRole::ControlPlane if std::mem::take(&mut first_control_plane) => NodeRole::Init,
        GroupRole::ControlPlane => NodeRole::ControlPlane,
    }
}
