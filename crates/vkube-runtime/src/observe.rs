//! Observing a cluster: every VM in its dedicated folder, in one
//! property-collector read, turned into `vkube-core`'s `ObservedCluster`.
//!
//! The folder belongs to the cluster, so a VM in it that lacks vkube's
//! markers is a node whose creation was interrupted after the clone: it is
//! adopted (by its deterministic name) and finished, never cloned twice.
//! A VM that carries another uid's markers is never this cluster's node,
//! whatever its name: it is a claimant (another state created it), which
//! [`crate::ownership`] refuses to work beside.

use std::collections::BTreeMap;

use vkube_core::cluster::{
    cluster_folder, parse_vm_name, ClusterSpec, ObservedCluster, ObservedNode, PowerState,
    MARKER_CLUSTER_NAME, MARKER_CLUSTER_UID, MARKER_DOMAIN, MARKER_SPEC_HASH,
};
use vkube_vsphere::vm::ObservedVm;
use vkube_vsphere::{FolderId, Inventory, VmId, VspherePort};

use crate::error::Result;

/// What is in vCenter for one cluster.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The cluster folder, if it exists.
    pub folder: Option<FolderId>,
    /// The planner's view.
    pub cluster: ObservedCluster,
    /// Each node's VM, by node name.
    pub vms: BTreeMap<String, (VmId, ObservedVm)>,
    /// Nodes whose markers are missing (interrupted creation): finish them.
    pub unfinished: Vec<String>,
    /// VMs in the folder that are not this cluster's nodes (claimants
    /// included).
    pub strangers: Vec<String>,
    /// VMs in the folder that claim this cluster (its name marker, or one
    /// of its node names) with another uid's markers, by that uid: what
    /// another state file created.
    pub claimants: BTreeMap<String, Vec<String>>,
    /// Nodes whose VMs carry no uid marker at all (also in `unfinished`).
    pub unmarked: Vec<String>,
    /// Second VMs of one node (a clone raced by an interrupted run's clone):
    /// vkube's own, to be destroyed.
    pub duplicates: Vec<(String, VmId)>,
}

fn power_state(state: &str) -> PowerState {
    match state {
        "poweredOn" => PowerState::PoweredOn,
        "suspended" => PowerState::Suspended,
        _ => PowerState::PoweredOff,
    }
}

/// Observe the cluster's folder, found in `inventory` (three round trips,
/// whatever its size).
pub async fn observe(
    vsphere: &dyn VspherePort,
    inventory: &Inventory,
    spec: &ClusterSpec,
    uid: &str,
) -> Result<Observation> {
    let path = cluster_folder(spec.folder(), spec.name());
    let folder = inventory
        .resolve(&path, "cluster folder")
        .ok()
        .and_then(FolderId::of);
    observe_folder(vsphere, folder.as_ref(), spec, uid).await
}

/// Observe the cluster folder `folder` (`None`: it does not exist yet).
pub async fn observe_folder(
    vsphere: &dyn VspherePort,
    folder: Option<&FolderId>,
    spec: &ClusterSpec,
    uid: &str,
) -> Result<Observation> {
    let Some(folder_ref) = folder.cloned() else {
        return Ok(Observation::default());
    };
    let mut vms = vsphere.folder_vms(&folder_ref).await?;
    // When one node has two VMs, keep the most complete one.
    let bootstrapped = |vm: &ObservedVm| {
        vm.extra_config.contains_key("guestinfo.metadata")
            || vm
                .extra_config
                .contains_key("guestinfo.ignition.config.data")
    };
    vms.sort_by_key(|vm| {
        (
            !bootstrapped(vm),
            vm.power_state != "poweredOn",
            vm.id.len(),
            vm.id.clone(),
        )
    });
    let groups = spec.groups();
    let group_names: Vec<&str> = groups.iter().map(|g| g.name()).collect();
    let mut observation = Observation {
        folder: Some(folder_ref),
        ..Default::default()
    };
    observation.cluster.folder_exists = true;
    for vm in vms {
        let marker = |key: &str| vm.extra_config.get(key).cloned();
        let owned = marker(MARKER_CLUSTER_UID);
        let parsed = parse_vm_name(spec.name(), &group_names, &vm.name);
        if let Some(other) = owned.as_deref().filter(|u| *u != uid) {
            // Another uid's VM: never touched, and a claim on this cluster
            // when it carries its name.
            let named_ours = marker(MARKER_CLUSTER_NAME).as_deref() == Some(spec.name().as_str());
            if named_ours || parsed.is_some() {
                observation
                    .claimants
                    .entry(other.to_owned())
                    .or_default()
                    .push(vm.name.clone());
            }
            observation.strangers.push(vm.name.clone());
            continue;
        }
        let Some((group, index)) = parsed else {
            observation.strangers.push(vm.name.clone());
            continue;
        };
        if observation.vms.contains_key(&vm.name) {
            observation
                .duplicates
                .push((vm.name.clone(), VmId::new(vm.id.clone())));
            continue;
        }
        if owned.is_none() {
            observation.unmarked.push(vm.name.clone());
        }
        let group_spec = groups
            .iter()
            .find(|g| g.name() == group)
            .expect("parsed group exists");
        // Bootstrap data is written last: without it the node is unfinished
        // even when the clone already carried the markers.
        let bootstrapped = bootstrapped(&vm);
        let (spec_hash, domain) = match (owned, marker(MARKER_SPEC_HASH), marker(MARKER_DOMAIN)) {
            (Some(_), Some(hash), Some(domain)) if bootstrapped => (hash, domain),
            (Some(_), Some(hash), Some(domain)) => {
                observation.unfinished.push(vm.name.clone());
                (hash, domain)
            }
            _ => {
                observation.unfinished.push(vm.name.clone());
                (
                    group_spec.spec_hash(),
                    group_spec.domain_for(index).to_string(),
                )
            }
        };
        observation.cluster.nodes.push(ObservedNode {
            name: vm.name.clone(),
            pool: group.to_string(),
            domain,
            spec_hash,
            power_state: power_state(&vm.power_state),
            cpu: vm.num_cpus.max(0) as u32,
            memory_mib: vm.memory_mib.max(0) as u32,
            index,
            // Not observed yet: the runtime's Kubernetes observation comes
            // with the rest of issue 12 (wip/k8s-lifecycle).
            kube: vkube_core::cluster::KubeNode::default(),
            powered_on_for: None,
        });
        observation
            .vms
            .insert(vm.name.clone(), (VmId::new(vm.id.clone()), vm));
    }
    observation
        .cluster
        .nodes
        .sort_by(|a, b| (&a.pool, a.index).cmp(&(&b.pool, b.index)));
    Ok(observation)
}
