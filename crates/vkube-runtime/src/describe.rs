//! `cluster describe`: one view of a cluster from the state, from vCenter
//! and from Kubernetes — per node its VM, power state, address and
//! recorded phase, and whether its Node object is registered and Ready
//! (kubelet version, taints, conditions), with the API server's health
//! through the VIP. Kubernetes is asked once a node was seen registered
//! (as `apply` does); when it does not answer, one line says so and the
//! vSphere side is shown all the same.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use vkube_core::cluster::{cluster_folder, vip_lease_node, ClusterSpec, Vip};
use vkube_kube::NodeInfo;
use vkube_store::{LeaseFilter, StateStore};
use vkube_vsphere::VspherePort;

use crate::context::Context;
use crate::error::Result;
use crate::kube_view::seen_registered;
use crate::observe::observe;
use crate::ownership::check_vcenter;

/// A cluster as the state and vCenter show it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// Cluster name.
    pub name: String,
    /// Its uid (vkube's markers carry it).
    pub uid: String,
    /// The recorded phase.
    pub phase: String,
    /// Why the last apply failed, until one converges.
    pub last_error: Option<String>,
    /// The instance UUID of the vCenter the cluster is on.
    pub vcenter: Option<String>,
    /// Kubernetes version of the spec.
    #[serde(skip)]
    pub kubernetes_version: String,
    /// The control-plane VIP (the API server is on port 6443).
    pub control_plane_endpoint: String,
    /// The API server through the VIP: `ready`, `not ready: …`,
    /// `unreachable: …`, or `not asked: …`.
    pub api: String,
    /// Every node vCenter shows.
    pub nodes: Vec<NodeView>,
    /// Node objects named like this cluster's nodes without a VM.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nodes_without_vm: Vec<String>,
}

/// One node.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// Its group.
    pub pool: String,
    /// Its placement domain.
    pub domain: String,
    /// The VM's inventory path.
    pub vm: String,
    /// Its address: the lease, else what the guest reports, else `dhcp`.
    pub ip: String,
    /// vCenter's power state.
    pub power_state: String,
    /// The recorded phase (`Unrecorded` when the state has no row).
    pub phase: String,
    /// The Kubernetes side; `None` when the API server was not read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeView>,
}

/// A node as the API server shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeView {
    /// Whether its Node object exists.
    pub registered: bool,
    /// The `Ready` condition's status (`True`, `False`, `Unknown`).
    pub ready: String,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet_version: Option<String>,
    /// Cordoned (`spec.unschedulable`).
    pub cordoned: bool,
    /// Taints, as `key=value:Effect`.
    pub taints: Vec<String>,
    /// Conditions other than `Ready` that are not in their healthy state
    /// (`MemoryPressure=True`, …).
    pub conditions: Vec<String>,
}

impl KubeView {
    fn of(info: Option<&NodeInfo>) -> KubeView {
        let Some(info) = info else {
            return KubeView {
                registered: false,
                ready: String::new(),
                kubelet_version: None,
                cordoned: false,
                taints: Vec::new(),
                conditions: Vec::new(),
            };
        };
        KubeView {
            registered: true,
            ready: info
                .ready
                .as_ref()
                .map_or_else(|| "Unknown".into(), |c| c.status.to_string()),
            kubelet_version: info.kubelet_version.clone(),
            cordoned: info.unschedulable,
            taints: info.taints.iter().map(ToString::to_string).collect(),
            conditions: info
                .conditions
                .iter()
                .filter(|c| c.kind != "Ready" && c.status != vkube_kube::ConditionStatus::False)
                .map(|c| format!("{}={}", c.kind, c.status))
                .collect(),
        }
    }
}

/// What the API server said: its health line and its Node objects.
async fn read_kube(
    store: &dyn StateStore,
    spec: &ClusterSpec,
    ctx: &Context<'_>,
    timeout: Duration,
) -> (String, Option<BTreeMap<String, NodeInfo>>) {
    let api = match crate::access::cluster_api(store, spec, ctx, timeout).await {
        Ok(api) => api,
        Err(e) => return (format!("unreachable: {e}"), None),
    };
    let health = match api.api_health().await {
        Ok(health) if health.is_ready() => "ready".to_string(),
        Ok(health) => format!("not ready: {health}"),
        Err(e) => return (format!("unreachable: {e}"), None),
    };
    match api.nodes().await {
        Ok(nodes) => (
            health,
            Some(nodes.into_iter().map(|n| (n.name.clone(), n)).collect()),
        ),
        Err(e) => (format!("{health}; its Node list failed: {e}"), None),
    }
}

/// Describe cluster `name`.
pub async fn describe(
    vsphere: &dyn VspherePort,
    store: &dyn StateStore,
    name: &str,
    ctx: &Context<'_>,
    api_timeout: Duration,
) -> Result<ClusterView> {
    let record = store.cluster(name).await?;
    let spec = ClusterSpec::from_yaml(&record.spec_yaml)?;
    // Another vCenter's VMs of the same names are not this cluster's.
    check_vcenter(&record, &vsphere.facts())?;
    let inventory = vsphere.inventory().await?;
    let observation = observe(vsphere, &inventory, &spec, &record.uid).await?;
    let leases = store
        .leases(&LeaseFilter {
            pool: None,
            cluster: Some(name.to_string()),
        })
        .await?;
    let stored = store.nodes(name).await?;
    let (api, kube_nodes) = if stored.iter().any(|r| seen_registered(r.node.phase)) {
        read_kube(store, &spec, ctx, api_timeout).await
    } else {
        (
            "not asked: no node was seen registered with Kubernetes yet (`vkube cluster apply --wait ready` looks)".into(),
            None,
        )
    };
    let folder = cluster_folder(spec.folder(), spec.name());
    let nodes = observation
        .cluster
        .nodes
        .iter()
        .map(|node| {
            let vm = observation.vms.get(&node.name);
            NodeView {
                name: node.name.clone(),
                pool: node.pool.clone(),
                domain: node.domain.clone(),
                vm: vm
                    .map(|(r, _)| inventory.path(r.id()))
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| format!("{folder}/{}", node.name)),
                ip: leases
                    .iter()
                    .find(|l| l.node == node.name)
                    .map(|l| l.address.to_string())
                    .or_else(|| vm.and_then(|(_, o)| o.ip.clone()))
                    .unwrap_or_else(|| "dhcp".into()),
                power_state: vm.map(|(_, o)| o.power_state.clone()).unwrap_or_default(),
                phase: stored
                    .iter()
                    .find(|s| s.node.name == node.name)
                    .map(|s| format!("{:?}", s.node.phase))
                    .unwrap_or_else(|| "Unrecorded".into()),
                kubernetes: kube_nodes
                    .as_ref()
                    .map(|nodes| KubeView::of(nodes.get(&node.name))),
            }
        })
        .collect();
    let groups: Vec<&str> = spec.groups().iter().map(|g| g.name()).collect();
    let nodes_without_vm = kube_nodes
        .iter()
        .flat_map(|nodes| nodes.keys())
        .filter(|n| !observation.vms.contains_key(*n))
        .filter(|n| vkube_core::cluster::parse_vm_name(spec.name(), &groups, n).is_some())
        .cloned()
        .collect();
    let vip = match spec.control_plane().vip() {
        Vip::Address(a) => a.to_string(),
        Vip::FromPool(_) => leases
            .iter()
            .find(|l| l.node == vip_lease_node(spec.name()))
            .map(|l| l.address.to_string())
            .unwrap_or_default(),
    };
    Ok(ClusterView {
        name: name.to_owned(),
        uid: record.uid,
        phase: record.phase.as_str().to_owned(),
        last_error: record.last_error,
        vcenter: record.vcenter_uuid,
        kubernetes_version: spec.kubernetes_version().to_string(),
        control_plane_endpoint: vip,
        api,
        nodes,
        nodes_without_vm,
    })
}
