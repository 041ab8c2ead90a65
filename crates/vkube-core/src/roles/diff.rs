//! Comparing privileges: a role's desired set against what vCenter has
//! ([`RoleDiff`]), and what a principal must hold at each slot
//! ([`Requirement`]).
//!
//! Pure set arithmetic over values the caller observed; fetching roles and
//! effective privileges from vCenter is `vkube-vsphere`'s job.

use std::collections::BTreeSet;

use serde::Serialize;

use super::privilege::{is_implied_system, PrivilegeId};
use super::{Catalog, Slot};

/// How a role in vCenter differs from its catalog entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RoleDiff {
    /// In the catalog but missing from vCenter.
    pub added: BTreeSet<PrivilegeId>,
    /// In vCenter but not in the catalog (may include ids vkube does not know).
    pub removed: BTreeSet<String>,
}

impl RoleDiff {
    /// Compares `desired` (from a catalog) with `actual` (the role's
    /// privilege list as vCenter reports it).
    ///
    /// `System.Anonymous`, `System.Read` and `System.View` are ignored on both
    /// sides: vCenter adds them to every role by itself, so they are never a
    /// real difference.
    pub fn between(desired: &BTreeSet<PrivilegeId>, actual: &BTreeSet<String>) -> RoleDiff {
        let added = desired
            .iter()
            .filter(|id| !id.is_implied_system() && !actual.contains(id.as_str()))
            .cloned()
            .collect();
        let removed = actual
            .iter()
            .filter(|id| {
                !is_implied_system(id)
                    && !desired.iter().any(|wanted| wanted.as_str() == id.as_str())
            })
            .cloned()
            .collect();
        RoleDiff { added, removed }
    }

    /// Whether the role already matches.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// One privilege a principal must hold at an object of some slot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Requirement {
    /// The privilege.
    pub privilege: PrivilegeId,
    /// The catalog role that grants it.
    pub role: String,
    /// Where that role is granted: the slot asked about, or an ancestor
    /// whose grant propagates down to it.
    pub granted_at: Slot,
    /// Whether the grant propagates, so the privilege must also be effective
    /// on the object's children (e.g. the VMs inside the VM folder).
    pub inherited_by_children: bool,
    /// Whether only some commands need it (the role is `optional`).
    pub optional: bool,
}

impl Catalog {
    /// What the principal must hold at an object bound to `slot`, from the
    /// grants made directly on that slot.
    ///
    /// Builtin roles contribute nothing here: their content is vCenter's.
    /// Sorted by privilege, then role.
    pub fn required_at(&self, slot: Slot) -> Vec<Requirement> {
        let mut requirements = Vec::new();
        for role in self.roles() {
            for grant in role.grants().iter().filter(|grant| grant.slot == slot) {
                for privilege in role.privileges() {
                    requirements.push(Requirement {
                        privilege: privilege.id.clone(),
                        role: role.name().to_owned(),
                        granted_at: grant.slot,
                        inherited_by_children: grant.propagate,
                        optional: role.is_optional(),
                    });
                }
            }
        }
        requirements.sort();
        requirements
    }

    /// What must be effective at an object bound to `slot`: its own
    /// requirements plus those propagated from the slots above it
    /// ([`Slot::ancestors`]).
    ///
    /// This is what a checker compares with vCenter's effective privileges
    /// on the object (which already include inherited permissions).
    pub fn effective_at(&self, slot: Slot) -> Vec<Requirement> {
        let mut requirements = self.required_at(slot);
        for ancestor in slot.ancestors() {
            requirements.extend(
                self.required_at(*ancestor)
                    .into_iter()
                    .filter(|r| r.inherited_by_children),
            );
        }
        requirements.sort();
        requirements
    }

    /// The requirements at `slot` that `effective` (the privilege ids the
    /// principal holds on the object) does not satisfy. Implied `System.*`
    /// privileges count as held.
    pub fn missing_at(&self, slot: Slot, effective: &BTreeSet<String>) -> Vec<Requirement> {
        self.effective_at(slot)
            .into_iter()
            .filter(|r| {
                !r.privilege.is_implied_system() && !effective.contains(r.privilege.as_str())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[&str]) -> BTreeSet<PrivilegeId> {
        ids.iter().map(|id| PrivilegeId::new(id).unwrap()).collect()
    }

    fn strings(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn diff_ignores_implied_system_privileges() {
        let desired = set(&["Folder.Create", "System.Read"]);
        let actual = strings(&["Folder.Create", "System.Anonymous", "System.View"]);
        assert!(RoleDiff::between(&desired, &actual).is_empty());
    }

    #[test]
    fn diff_reports_both_directions() {
        let desired = set(&["Folder.Create", "Folder.Delete"]);
        let actual = strings(&[
            "Folder.Create",
            "Folder.Rename",
            "Vendor.Unknown",
            "System.Read",
        ]);
        let diff = RoleDiff::between(&desired, &actual);
        assert_eq!(diff.added, set(&["Folder.Delete"]));
        assert_eq!(diff.removed, strings(&["Folder.Rename", "Vendor.Unknown"]));
        assert!(!diff.is_empty());
    }

    #[test]
    fn required_at_carries_propagation() {
        let catalog = Catalog::builtin("kkp-user").unwrap();
        let at_folder = catalog.required_at(Slot::VmFolder);
        assert!(!at_folder.is_empty());
        assert!(at_folder
            .iter()
            .all(|r| r.role == "k8c-user-folder-propagate" && r.inherited_by_children));
        let at_vcenter = catalog.required_at(Slot::Vcenter);
        assert!(at_vcenter.iter().all(|r| !r.inherited_by_children));
        assert!(at_vcenter.iter().any(|r| r.role == "k8c-user-tags"
            && r.privilege.as_str() == "InventoryService.Tagging.CreateTag"));
    }

    #[test]
    fn node_vms_inherit_from_the_vm_folder_and_cluster() {
        let catalog = Catalog::builtin("vkube").unwrap();
        assert!(catalog.required_at(Slot::NodeVms).is_empty());
        let effective = catalog.effective_at(Slot::NodeVms);
        let power_on = effective
            .iter()
            .find(|r| r.privilege.as_str() == "VirtualMachine.Interact.PowerOn")
            .unwrap();
        assert_eq!(power_on.granted_at, Slot::VmFolder);
        assert!(effective
            .iter()
            .any(|r| r.granted_at == Slot::ComputeCluster));
        // The root grant of `vkube-vcenter` does not propagate; the optional admin role's does.
        assert!(effective
            .iter()
            .filter(|r| r.granted_at == Slot::Vcenter)
            .all(|r| r.optional));
    }

    #[test]
    fn missing_at_lists_what_is_not_held() {
        let catalog = Catalog::builtin("kkp-user").unwrap();
        let held = strings(&["Datastore.AllocateSpace", "Datastore.Browse"]);
        let missing = catalog.missing_at(Slot::Datastore, &held);
        let ids: Vec<_> = missing.iter().map(|r| r.privilege.as_str()).collect();
        assert_eq!(ids, ["Datastore.FileManagement"]);
    }
}
