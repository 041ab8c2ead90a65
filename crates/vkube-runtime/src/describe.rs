//! `cluster describe`: one view of a cluster from the state and from
//! vCenter — per node its VM, power state, address and recorded phase.

use serde::Serialize;
use vkube_core::cluster::{cluster_folder, vip_lease_node, ClusterSpec, Vip};
use vkube_store::{LeaseFilter, StateStore};
use vkube_vsphere::VspherePort;

use crate::error::Result;
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
    /// Every node vCenter shows.
    pub nodes: Vec<NodeView>,
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
}

/// Describe cluster `name`.
pub async fn describe(
    vsphere: &dyn VspherePort,
    store: &dyn StateStore,
    name: &str,
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
            }
        })
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
        nodes,
    })
}
