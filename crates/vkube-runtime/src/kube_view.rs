//! The Kubernetes side of a pass: what the cluster's API server and etcd
//! say about the nodes vCenter shows, turned into the planner's
//! [`KubeNode`]s, [`ApiView`], [`EtcdView`] and orphan Node objects.
//!
//! Kubernetes is only asked when it matters: once a node of the cluster
//! was seen registered (its record says [`NodePhase::Registered`] or
//! [`NodePhase::Drained`]), or when the caller waits for readiness. A
//! cluster whose API never answered (a new one, or the simulator) costs
//! nothing and plans as before.
//!
//! etcd is read (one health call, which lists the members) when a
//! control-plane node is known to Kubernetes. Its client URLs come from
//! kubeadm's etcd static pods, read through the API server; without those,
//! from the control-plane nodes' addresses on etcd's client port.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use vkube_core::cluster::{
    parse_vm_name, ApiView, ClusterSpec, ConditionStatus, EtcdView, KubeNode, ObservedCluster,
    ObservedCondition, RegisteredNode, READY_CONDITION,
};
use vkube_kube::etcd::{ClusterHealth, MemberId};
use vkube_kube::{ClusterApi, NodeInfo};
use vkube_store::{NodePhase, NodeRecord};

use crate::kube::{EtcdMembers, ETCD_CLIENT_PORT};

/// Whether a node's record says Kubernetes has seen it.
pub(crate) fn seen_registered(phase: NodePhase) -> bool {
    matches!(phase, NodePhase::Registered | NodePhase::Drained)
}

/// What this pass read from the cluster, kept for its steps.
#[derive(Default, Clone)]
pub(crate) struct KubeSide {
    /// The API client, when the API server answered.
    pub api: Option<Arc<dyn ClusterApi>>,
    /// Node objects by name (empty when the API did not answer).
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Why the API server could not be asked, when it could not.
    pub unreachable: Option<String>,
    /// The etcd client and its members' ids by node name, when read.
    pub etcd: Option<EtcdSide>,
}

/// etcd as this pass read it.
#[derive(Clone)]
pub(crate) struct EtcdSide {
    /// Client for the members.
    pub client: Arc<dyn EtcdMembers>,
    /// Members by the name the planner knows them by, with health.
    pub view: EtcdView,
    /// Member ids by that name.
    pub ids: BTreeMap<String, MemberId>,
}

/// Where the etcd members serve clients: the static pods' advertised
/// URLs, else the control-plane nodes' `addresses` on etcd's client port.
pub(crate) async fn etcd_endpoints(api: &dyn ClusterApi, addresses: &[IpAddr]) -> Vec<String> {
    match api.etcd_endpoints().await {
        Ok(found) if !found.is_empty() => found.into_iter().flat_map(|e| e.client_urls).collect(),
        _ => addresses
            .iter()
            .map(|ip| format!("https://{}", SocketAddr::new(*ip, ETCD_CLIENT_PORT)))
            .collect(),
    }
}

/// The planner's names for etcd's members: the member's own name
/// (kubeadm names members after their node); for a member added but not
/// started, the node whose address its peer URL carries; else the peer URL.
pub(crate) fn etcd_view(
    health: &ClusterHealth,
    addresses: &BTreeMap<String, IpAddr>,
) -> (EtcdView, BTreeMap<String, MemberId>) {
    let mut view = EtcdView::default();
    let mut ids = BTreeMap::new();
    for member in &health.members {
        let name = if member.member.name.is_empty() {
            let peer = member.member.peer_urls.first().cloned().unwrap_or_default();
            addresses
                .iter()
                .find(|(_, ip)| url_host(&peer) == Some(**ip))
                .map(|(node, _)| node.clone())
                .unwrap_or(peer)
        } else {
            member.member.name.clone()
        };
        if member.state.is_healthy() {
            view.healthy.insert(name.clone());
        }
        view.members.push(name.clone());
        ids.insert(name, member.member.id);
    }
    view.members.sort();
    (view, ids)
}

/// The IP address of `https://10.0.0.1:2380` or `https://[fd00::1]:2380`.
fn url_host(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    authority
        .parse::<SocketAddr>()
        .map(|a| a.ip())
        .or_else(|_| authority.parse::<IpAddr>())
        .ok()
}

/// How long ago `at` was (zero when unknown or in the future).
fn age(now: SystemTime, at: Option<SystemTime>) -> Duration {
    at.and_then(|at| now.duration_since(at).ok())
        .unwrap_or_default()
}

fn status(status: vkube_kube::ConditionStatus) -> ConditionStatus {
    match status {
        vkube_kube::ConditionStatus::True => ConditionStatus::True,
        vkube_kube::ConditionStatus::False => ConditionStatus::False,
        _ => ConditionStatus::Unknown,
    }
}

/// The planner's view of a registered Node object.
pub(crate) fn registered(info: &NodeInfo, drained: bool, now: SystemTime) -> RegisteredNode {
    let (ready, ready_held_for) = match &info.ready {
        Some(c) => (status(c.status), age(now, c.last_transition)),
        None => (ConditionStatus::Unknown, age(now, info.created)),
    };
    RegisteredNode {
        ready,
        ready_held_for,
        other_conditions: info
            .conditions
            .iter()
            .filter(|c| c.kind != READY_CONDITION)
            .map(|c| ObservedCondition {
                kind: c.kind.clone(),
                status: status(c.status),
                held_for: age(now, c.last_transition),
            })
            .collect(),
        kubelet_version: info.kubelet_version.clone(),
        cordoned: info.unschedulable,
        drained: drained && info.unschedulable,
    }
}

/// A record's phase that this pass's view asks to be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PhaseChange {
    /// The node.
    pub node: String,
    /// Its new phase.
    pub phase: NodePhase,
}

/// Fill `observed` with the Kubernetes side: each node's [`KubeNode`] from
/// this pass's Node objects (or, with the API unreachable, from its
/// record), the API's reachability, etcd, and Node objects of this
/// cluster's names without a VM. Returns the record phases to write: nodes
/// seen registered for the first time, and drained nodes someone
/// uncordoned.
pub(crate) fn fill(
    observed: &mut ObservedCluster,
    side: &KubeSide,
    records: &BTreeMap<String, NodeRecord>,
    spec: &ClusterSpec,
    now: SystemTime,
) -> Vec<PhaseChange> {
    let mut changes = Vec::new();
    let reachable = side.api.is_some();
    observed.api = if reachable {
        ApiView::Reachable
    } else {
        ApiView::Unreachable
    };
    for node in &mut observed.nodes {
        let phase = records.get(&node.name).map(|r| r.node.phase);
        let seen = phase.is_some_and(seen_registered);
        let drained = phase == Some(NodePhase::Drained);
        node.kube = match (reachable, side.nodes.get(&node.name)) {
            (true, Some(info)) => {
                let view = registered(info, drained, now);
                if !seen || (drained && !info.unschedulable) {
                    changes.push(PhaseChange {
                        node: node.name.clone(),
                        phase: NodePhase::Registered,
                    });
                }
                KubeNode::Registered(view)
            }
            (true, None) if seen => KubeNode::Deregistered,
            (true, None) => KubeNode::NeverRegistered,
            (false, _) if seen => KubeNode::Unreachable {
                last_seen_ready: phase == Some(NodePhase::Registered),
            },
            (false, _) => KubeNode::NeverRegistered,
        };
        if node.kube.is_known() {
            node.powered_on_for = None;
        }
    }
    if reachable {
        let groups: Vec<&str> = spec.groups().iter().map(|g| g.name()).collect();
        let with_vm: BTreeSet<&str> = observed.nodes.iter().map(|n| n.name.as_str()).collect();
        observed.orphan_node_objects = side
            .nodes
            .keys()
            .filter(|name| !with_vm.contains(name.as_str()))
            .filter(|name| parse_vm_name(spec.name(), &groups, name).is_some())
            .cloned()
            .collect();
    }
    observed.etcd = side.etcd.as_ref().map(|e| e.view.clone());
    changes
}

/// The nodes of `observed` a `--wait ready` still waits for: those
/// Kubernetes never saw, and those registered but not `Ready`.
pub(crate) fn not_ready(observed: &ObservedCluster) -> (Vec<String>, Vec<String>) {
    let mut never = Vec::new();
    let mut not_ready = Vec::new();
    for node in &observed.nodes {
        match &node.kube {
            KubeNode::Registered(r) if r.ready == ConditionStatus::True => {}
            KubeNode::Registered(_) => not_ready.push(node.name.clone()),
            _ => never.push(node.name.clone()),
        }
    }
    (never, not_ready)
}

/// `prefix` and the quoted names, or nothing when there are none.
pub(crate) fn listed(prefix: &str, names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    format!("{prefix}{}", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_give_their_address() {
        assert_eq!(
            url_host("https://10.0.0.1:2380"),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(
            url_host("https://[fd00::1]:2380"),
            Some("fd00::1".parse().unwrap())
        );
        assert_eq!(url_host("https://node-a:2380"), None);
    }
}
