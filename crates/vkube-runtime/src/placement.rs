//! Resolving a spec's inventory paths against vCenter in one pass, before
//! anything is created: every missing or wrong-kind object is reported
//! together, each naming its spec field.

use std::collections::BTreeMap;

use vkube_core::cluster::{CloneMode, ClusterSpec, Problem, Storage};
use vkube_vsphere::vm::NetworkTarget;
use vkube_vsphere::{
    ComputeResourceId, DatastoreClusterId, DatastoreId, Details, Entity, FolderId, Inventory,
    NetworkId, ResourcePoolId, SnapshotId, VmId, VspherePort,
};

use crate::error::{Error, Result};
use crate::progress::Progress;

/// Where a domain's datastore comes from.
#[derive(Debug, Clone)]
pub enum StorageTarget {
    /// A fixed datastore.
    Datastore(DatastoreId),
    /// A datastore cluster: Storage DRS picks per clone.
    DatastoreCluster(DatastoreClusterId),
}

/// A placement domain with every path resolved.
#[derive(Debug, Clone)]
pub struct DomainPlacement {
    /// The compute cluster.
    pub compute_cluster: ComputeResourceId,
    /// The resource pool.
    pub resource_pool: ResourcePoolId,
    /// Datastore or datastore cluster.
    pub storage: StorageTarget,
    /// NIC backing for the domain's network.
    pub network: NetworkTarget,
}

/// The resolved spec: every reference an apply needs.
#[derive(Debug, Clone)]
pub struct Placement {
    /// The parent VM folder (the cluster folder goes inside).
    pub parent_folder: FolderId,
    /// The template VM.
    pub template: VmId,
    /// Snapshot for linked clones; `None` means full clones.
    pub linked_snapshot: Option<SnapshotId>,
    /// Domains by name.
    pub domains: BTreeMap<String, DomainPlacement>,
}

fn expect<'a>(
    inventory: &'a Inventory,
    problems: &mut Vec<Problem>,
    field: String,
    path: &str,
    kind: &str,
    accept: impl Fn(&Details) -> bool,
) -> Option<&'a Entity> {
    match inventory.resolve(path, kind) {
        Ok(entity) if accept(&entity.details) => Some(entity),
        Ok(entity) => {
            problems.push(Problem {
                field,
                message: format!("`{path}` is a {}, not a {kind}", entity.type_name),
            });
            None
        }
        Err(e) => {
            problems.push(Problem {
                field,
                message: e.to_string(),
            });
            None
        }
    }
}

/// Resolve every path of `spec`. All problems come back in one
/// [`Error::Placement`]. A linked clone without a template snapshot falls
/// back to a full clone, with a warning through `progress`.
pub async fn resolve(
    vsphere: &dyn VspherePort,
    inventory: &Inventory,
    spec: &ClusterSpec,
    progress: &dyn Progress,
) -> Result<Placement> {
    let mut problems = Vec::new();
    let datacenter = expect(
        inventory,
        &mut problems,
        "spec.datacenter".into(),
        &format!("/{}", spec.datacenter().trim_matches('/')),
        "datacenter",
        |d| matches!(d, Details::Datacenter),
    );
    let parent_folder = expect(
        inventory,
        &mut problems,
        "spec.folder".into(),
        spec.folder(),
        "VM folder",
        |d| matches!(d, Details::Folder { child_types } if child_types.iter().any(|t| t == "VirtualMachine")),
    );
    let template = if spec.template().starts_with('/') {
        expect(
            inventory,
            &mut problems,
            "spec.template".into(),
            spec.template(),
            "VM or template",
            |d| matches!(d, Details::VirtualMachine { .. }),
        )
    } else {
        // By name: unique within the spec's datacenter.
        let dc_id = datacenter.map(|d| d.id.clone());
        let matches: Vec<&Entity> = inventory
            .select(|d| matches!(d, Details::VirtualMachine { .. }))
            .into_iter()
            .filter(|e| {
                e.name == spec.template()
                    && inventory.datacenter_of(&e.id).map(|d| d.id.clone()) == dc_id
            })
            .collect();
        match matches.as_slice() {
            [one] => Some(*one),
            [] => {
                problems.push(Problem {
                    field: "spec.template".into(),
                    message: format!(
                        "no VM or template named `{}` in `{}`",
                        spec.template(),
                        spec.datacenter()
                    ),
                });
                None
            }
            many => {
                let paths: Vec<&str> = many.iter().map(|e| e.path.as_str()).collect();
                problems.push(Problem {
                    field: "spec.template".into(),
                    message: format!(
                        "`{}` is ambiguous: {}; give a path",
                        spec.template(),
                        paths.join(", ")
                    ),
                });
                None
            }
        }
    };
    let mut domains = BTreeMap::new();
    let mut networks = Vec::new();
    for (i, domain) in spec.placement_domains().iter().enumerate() {
        let field = |name: &str| format!("spec.placementDomains[{i}].{name}");
        let cluster = expect(
            inventory,
            &mut problems,
            field("computeCluster"),
            domain.compute_cluster(),
            "compute cluster",
            |d| {
                matches!(
                    d,
                    Details::ComputeCluster { .. } | Details::StandaloneComputeResource { .. }
                )
            },
        );
        let pool = expect(
            inventory,
            &mut problems,
            field("resourcePool"),
            domain.resource_pool(),
            "resource pool",
            |d| matches!(d, Details::ResourcePool { .. }),
        );
        if let (Some(cluster), Some(pool)) = (cluster, pool) {
            if let Details::ResourcePool { owner: Some(owner) } = &pool.details {
                if owner != &cluster.id {
                    problems.push(Problem {
                        field: field("resourcePool"),
                        message: format!(
                            "`{}` belongs to `{}`, not to `{}`",
                            pool.path,
                            inventory.path(owner),
                            cluster.path
                        ),
                    });
                }
            }
        }
        let storage = match domain.storage() {
            Storage::Datastore(path) => expect(
                inventory,
                &mut problems,
                field("datastore"),
                path,
                "datastore",
                |d| matches!(d, Details::Datastore { .. }),
            )
            .and_then(DatastoreId::of)
            .map(StorageTarget::Datastore),
            Storage::DatastoreCluster(path) => expect(
                inventory,
                &mut problems,
                field("datastoreCluster"),
                path,
                "datastore cluster",
                |d| matches!(d, Details::DatastoreCluster { .. }),
            )
            .and_then(DatastoreClusterId::of)
            .map(StorageTarget::DatastoreCluster),
        };
        let network = expect(
            inventory,
            &mut problems,
            field("network"),
            domain.network(),
            "network",
            |d| matches!(d, Details::Network { .. }),
        );
        let ids = (
            cluster.and_then(ComputeResourceId::of),
            pool.and_then(ResourcePoolId::of),
            storage,
            network.and_then(NetworkId::of),
        );
        if let (Some(cluster), Some(pool), Some(storage), Some(network)) = ids {
            networks.push((domain.name().to_string(), network));
            domains.insert(domain.name().to_string(), (cluster, pool, storage));
        }
    }
    if !problems.is_empty() {
        return Err(Error::Placement { problems });
    }
    let (Some(parent_folder), Some(template)) = (parent_folder, template) else {
        unreachable!("problems were reported above")
    };
    let (Some(parent_folder), Some(template_id)) =
        (FolderId::of(parent_folder), VmId::of(template))
    else {
        unreachable!("the kinds were checked above")
    };
    crate::images::check_cluster_template(vsphere, inventory, template, spec, progress).await?;
    let mut resolved = BTreeMap::new();
    for (name, network) in networks {
        let (compute_cluster, resource_pool, storage) =
            domains.remove(&name).expect("domain resolved above");
        let network: NetworkTarget = vsphere.network_target(&network).await?;
        resolved.insert(
            name,
            DomainPlacement {
                compute_cluster,
                resource_pool,
                storage,
                network,
            },
        );
    }
    let linked_snapshot = match spec.clone_mode() {
        CloneMode::Full => None,
        CloneMode::Linked => {
            let snapshot = vsphere.current_snapshot(&template_id).await?;
            if snapshot.is_none() {
                progress.warn(&format!(
                    "template `{}` has no snapshot: linked clones need one, falling back to full clones",
                    template.path
                ));
            }
            snapshot
        }
    };
    Ok(Placement {
        parent_folder,
        template: template_id,
        linked_snapshot,
        domains: resolved,
    })
}
