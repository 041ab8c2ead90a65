//! Privilege checks against a role catalog, shared by `vkube roles check`
//! and by cluster applies (the cluster's own CPI/CSI user).
//!
//! Bindings become objects in one inventory snapshot ([`resolve_targets`]);
//! for grants that must propagate, one child of each bound object is probed
//! as well ([`children_to_probe`]); effective privileges of all probed
//! objects come from one call, and `vkube_core::roles::check` compares.

use std::collections::{BTreeMap, BTreeSet};

use vkube_core::roles::{self, Catalog, CheckReport, Probe, Slot, Target, Targets};
use vkube_vsphere::{Details, Entity, Inventory, ObjectRef, VspherePort};

use crate::error::{Error, Result};

/// A bound object found in the inventory.
pub struct Resolved<'a> {
    /// The slot and path as bound.
    pub target: Target,
    /// The object.
    pub entity: &'a Entity,
}

/// Resolves every target in one inventory snapshot, checking that each path
/// exists and is the kind of object its slot means.
pub fn resolve_targets<'a>(
    inventory: &'a Inventory,
    targets: &Targets,
) -> Result<Vec<Resolved<'a>>> {
    targets
        .targets
        .iter()
        .map(|target| {
            let (kind, fits): (&str, fn(&Details) -> bool) = match target.slot {
                Slot::Vcenter => ("root folder", |d| matches!(d, Details::Folder { .. })),
                Slot::Datacenter => ("datacenter", |d| matches!(d, Details::Datacenter)),
                Slot::ComputeCluster => ("compute cluster", |d| {
                    matches!(
                        d,
                        Details::ComputeCluster { .. } | Details::StandaloneComputeResource { .. }
                    )
                }),
                Slot::Datastore => ("datastore", |d| matches!(d, Details::Datastore { .. })),
                Slot::DatastoreCluster => ("datastore cluster", |d| {
                    matches!(d, Details::DatastoreCluster { .. })
                }),
                Slot::Network => ("network", |d| {
                    matches!(d, Details::Network { .. } | Details::DistributedSwitch)
                }),
                Slot::VmFolder => ("VM folder", |d| matches!(d, Details::Folder { .. })),
                Slot::TemplateFolder => {
                    ("template folder", |d| matches!(d, Details::Folder { .. }))
                }
                // Node VMs, or the folder they are created in (before they
                // exist): the grant then propagates to every VM inside.
                Slot::NodeVms => ("VM or VM folder", |d| {
                    matches!(d, Details::VirtualMachine { .. } | Details::Folder { .. })
                }),
            };
            let entity =
                inventory
                    .resolve(&target.path, kind)
                    .map_err(|source| Error::Binding {
                        slot: target.slot,
                        problem: source.to_string(),
                    })?;
            if !fits(&entity.details) {
                return Err(Error::SlotMismatch {
                    slot: target.slot,
                    path: target.path.clone(),
                    found: entity.type_name.clone(),
                    expected: kind.to_owned(),
                });
            }
            let mut target = target.clone();
            target.container =
                target.slot == Slot::NodeVms && matches!(entity.details, Details::Folder { .. });
            Ok(Resolved { target, entity })
        })
        .collect()
}

/// Children of a bound object on which a propagating grant must be
/// effective too: a VM (or else any child) below a folder, a host and the
/// root resource pool of a cluster, the datastores of a datastore cluster,
/// the datacenter's folders, the first datacenter under the root. Objects
/// without inventory children (datastores, networks, VMs) have none.
pub fn children_to_probe<'a>(inventory: &'a Inventory, entity: &Entity) -> Vec<&'a Entity> {
    let children = inventory.children(&entity.id);
    match &entity.details {
        Details::Folder { .. } if entity.parent.is_none() => children.into_iter().take(1).collect(),
        Details::Folder { .. } => {
            let prefix = format!("{}/", entity.path);
            let vm = inventory
                .select(|d| matches!(d, Details::VirtualMachine { .. }))
                .into_iter()
                .find(|vm| vm.path.starts_with(&prefix));
            vm.or_else(|| children.into_iter().next())
                .into_iter()
                .collect()
        }
        Details::ComputeCluster { hosts } | Details::StandaloneComputeResource { hosts } => {
            let host = hosts.first().and_then(|id| inventory.get(id));
            let pool = children
                .into_iter()
                .find(|c| matches!(c.details, Details::ResourcePool { .. }));
            host.into_iter().chain(pool).collect()
        }
        Details::DatastoreCluster { .. } | Details::ResourcePool { .. } => {
            children.into_iter().take(1).collect()
        }
        Details::Datacenter => children,
        _ => Vec::new(),
    }
}

/// What to check: a catalog, where its slots are bound, and for whom.
pub struct PrivilegeCheck<'a> {
    /// The role catalog.
    pub catalog: &'a Catalog,
    /// Where its slots are bound.
    pub targets: &'a Targets,
    /// Whether optional roles count.
    pub include_optional: bool,
    /// The user to check, or `None` for this session's own user.
    pub principal: Option<&'a str>,
}

/// Compares effective privileges on every bound object (and a child of each
/// propagating binding) with what the catalog requires, in one
/// privilege read.
pub async fn check(
    vsphere: &dyn VspherePort,
    inventory: &Inventory,
    input: &PrivilegeCheck<'_>,
) -> Result<CheckReport> {
    let resolved = resolve_targets(inventory, input.targets)?;
    let mut probes: Vec<Probe> = Vec::new();
    let mut paths: BTreeMap<String, String> = BTreeMap::new(); // entity id -> path
    let mut entities: Vec<ObjectRef> = Vec::new();
    let mut add = |probe: Probe, entity: &Entity| {
        if paths
            .insert(entity.id.clone(), entity.path.clone())
            .is_none()
        {
            entities.push(entity.object());
        }
        probes.push(probe);
    };
    for target in &resolved {
        add(
            Probe {
                path: target.entity.path.clone(),
                slot: target.target.slot,
                child_of: None,
            },
            target.entity,
        );
        let propagates = input
            .catalog
            .effective_at(target.target.slot)
            .iter()
            .any(|r| r.inherited_by_children && (input.include_optional || !r.optional));
        if propagates {
            for child in children_to_probe(inventory, target.entity) {
                let probe = Probe {
                    path: child.path.clone(),
                    slot: target.target.slot,
                    child_of: Some(target.entity.path.clone()),
                };
                add(probe, child);
            }
        }
    }
    let (who, by_id) = match input.principal {
        Some(user) => (
            user.to_owned(),
            vsphere.user_privileges(&entities, user).await?,
        ),
        None => {
            let user = vsphere.session_user().await?;
            let wanted = roles::required_privileges(input.catalog, input.include_optional, &probes);
            (user, vsphere.session_privileges(&entities, &wanted).await?)
        }
    };
    let effective: BTreeMap<String, BTreeSet<String>> = by_id
        .into_iter()
        .filter_map(|(id, set)| paths.get(&id).map(|path| (path.clone(), set)))
        .collect();
    Ok(roles::check(
        input.catalog,
        input.include_optional,
        &who,
        &probes,
        &input.targets.unbound,
        &effective,
    ))
}
