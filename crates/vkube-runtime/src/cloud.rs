//! The cluster's own vCenter user for CPI and CSI (`spec.cloudCredentials`):
//! before anything is rendered for the nodes, its effective privileges are
//! checked against the `vsphere-cpi` and `vsphere-csi` role catalogs on the
//! objects the cluster uses, and the apply is refused with every missing
//! privilege named by object.
//!
//! Objects: the vCenter root, the datacenter, each domain's compute
//! cluster, each datastore volumes may land on (a datastore cluster's
//! member datastores), the VM folder nodes are created in, and the node
//! VMs — before the first clone that folder stands in for them (new VMs
//! inherit its propagating permissions; `vkube roles apply vsphere-csi
//! --bind node-vms=<folder>` grants there with propagation).

use std::collections::BTreeSet;

use vkube_core::cluster::{ClusterSpec, Storage};
use vkube_core::roles::{targets, Bindings, Catalog, Slot};
use vkube_vsphere::{Details, Inventory, VspherePort};

use crate::error::{Error, Result};
use crate::privileges::{self, PrivilegeCheck};

/// Role profiles the cloud user must satisfy.
pub const CLOUD_PROFILES: [&str; 2] = ["vsphere-cpi", "vsphere-csi"];

/// One privilege the cloud user lacks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MissingPrivilege {
    /// Which component needs it (`vsphere-cpi`, `vsphere-csi`).
    pub profile: String,
    /// The object, by inventory path.
    pub object: String,
    /// The privilege id.
    pub privilege: String,
    /// The catalog role that grants it.
    pub role: String,
}

/// Where the catalogs' slots are bound for `spec`: resolved inventory paths.
/// `node_vms` are the cluster's VMs found so far.
fn bindings(inventory: &Inventory, spec: &ClusterSpec, node_vms: &[String]) -> Result<Bindings> {
    let mut items: BTreeSet<String> = BTreeSet::new();
    let resolve = |path: &str, kind: &str| -> Result<String> {
        Ok(inventory.resolve(path, kind)?.path.clone())
    };
    items.insert(format!(
        "datacenter={}",
        resolve(spec.datacenter(), "datacenter")?
    ));
    items.insert(format!(
        "vm-folder={}",
        resolve(spec.folder(), "VM folder")?
    ));
    for domain in spec.placement_domains() {
        items.insert(format!(
            "compute-cluster={}",
            resolve(domain.compute_cluster(), "compute cluster")?
        ));
        match domain.storage() {
            Storage::Datastore(path) => {
                items.insert(format!("datastore={}", resolve(path, "datastore")?));
            }
            Storage::DatastoreCluster(path) => {
                let pod = inventory.resolve(path, "datastore cluster")?;
                for member in inventory.children(&pod.id) {
                    if matches!(member.details, Details::Datastore { .. }) {
                        items.insert(format!("datastore={}", member.path));
                    }
                }
            }
        }
    }
    // Before the first clone, the folder the VMs go in stands in for them.
    if node_vms.is_empty() {
        items.insert(format!("node-vms={}", resolve(spec.folder(), "VM folder")?));
    }
    for vm in node_vms {
        items.insert(format!("node-vms={vm}"));
    }
    Bindings::parse_all(&items).map_err(|e| Error::Binding {
        slot: Slot::NodeVms,
        problem: e.to_string(),
    })
}

/// Checks that `user` holds what CPI and CSI need on the cluster's
/// objects; fails with [`Error::CloudUserLacksPrivileges`] listing every
/// missing privilege. One privilege read per profile.
pub async fn check_cloud_user(
    vsphere: &dyn VspherePort,
    inventory: &Inventory,
    spec: &ClusterSpec,
    user: &str,
    node_vms: &[String],
) -> Result<()> {
    let bindings = bindings(inventory, spec, node_vms)?;
    let mut missing = Vec::new();
    for profile in CLOUD_PROFILES {
        let catalog = Catalog::builtin(profile).map_err(|e| Error::Binding {
            slot: Slot::Vcenter,
            problem: e.to_string(),
        })?;
        let targets = targets(&catalog, &bindings, false);
        let report = privileges::check(
            vsphere,
            inventory,
            &PrivilegeCheck {
                catalog: &catalog,
                targets: &targets,
                include_optional: false,
                principal: Some(user),
            },
        )
        .await?;
        for object in report.objects {
            for m in object.missing {
                missing.push(MissingPrivilege {
                    profile: profile.to_owned(),
                    object: object.path.clone(),
                    privilege: m.privilege,
                    role: m.role,
                });
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::CloudUserLacksPrivileges {
            user: user.to_owned(),
            missing,
        })
    }
}
