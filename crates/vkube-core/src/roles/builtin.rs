//! The role catalogs shipped inside vkube: `catalogs/roles/*.yaml`, embedded
//! at compile time.
//!
//! Owns the profile list and the tests that pin each catalog to the document
//! it was taken from. Parsing rules live in `catalog`.

use super::{Catalog, Error};

/// Embedded catalogs, in the order `vkube roles profiles` lists them.
const BUILTIN: [(&str, &str); 8] = [
    (
        "vkube",
        include_str!("../../../../catalogs/roles/vkube.yaml"),
    ),
    (
        "kkp-seed",
        include_str!("../../../../catalogs/roles/kkp-seed.yaml"),
    ),
    (
        "kkp-user",
        include_str!("../../../../catalogs/roles/kkp-user.yaml"),
    ),
    (
        "deckhouse",
        include_str!("../../../../catalogs/roles/deckhouse.yaml"),
    ),
    (
        "palette",
        include_str!("../../../../catalogs/roles/palette.yaml"),
    ),
    (
        "vsphere-csi",
        include_str!("../../../../catalogs/roles/vsphere-csi.yaml"),
    ),
    (
        "vsphere-cpi",
        include_str!("../../../../catalogs/roles/vsphere-cpi.yaml"),
    ),
    (
        "vsphere-cloud",
        include_str!("../../../../catalogs/roles/vsphere-cloud.yaml"),
    ),
];

/// An embedded profile and its one-line description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuiltinProfile {
    /// Profile name, as accepted by [`Catalog::builtin`].
    pub name: &'static str,
    /// The catalog's `description`.
    pub description: String,
}

impl Catalog {
    /// The embedded catalog for `profile` (e.g. `vkube`, `kkp-user`).
    ///
    /// Fails with [`Error::UnknownProfile`] listing the known names.
    pub fn builtin(profile: &str) -> Result<Catalog, Error> {
        let (name, text) = BUILTIN
            .iter()
            .find(|(name, _)| *name == profile)
            .ok_or_else(|| Error::UnknownProfile {
                name: profile.to_owned(),
                known: BUILTIN
                    .iter()
                    .map(|(name, _)| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        Catalog::parse(text, &format!("builtin:{name}"))
    }

    /// Every embedded profile with its description.
    pub fn builtin_profiles() -> Vec<BuiltinProfile> {
        BUILTIN
            .iter()
            .map(|(name, _)| BuiltinProfile {
                name,
                // Every embedded catalog is parsed by `tests::every_catalog_parses`.
                description: Catalog::builtin(name)
                    .map(|catalog| catalog.description().to_owned())
                    .unwrap_or_else(|error| format!("(invalid: {error})")),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::roles::{Grant, Registry, Slot};

    fn ids(profile: &str, role: &str) -> Vec<String> {
        let catalog = Catalog::builtin(profile).unwrap();
        let role = catalog
            .role(role)
            .unwrap_or_else(|| panic!("{profile} has no role {role}"));
        role.privileges()
            .iter()
            .map(|privilege| privilege.id.to_string())
            .collect()
    }

    fn grants(profile: &str, role: &str) -> Vec<(Slot, bool)> {
        let catalog = Catalog::builtin(profile).unwrap();
        let role = catalog.role(role).unwrap();
        role.grants()
            .iter()
            .map(|Grant { slot, propagate }| (*slot, *propagate))
            .collect()
    }

    fn words(list: &str) -> Vec<String> {
        list.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn every_catalog_parses_with_matching_profile_name() {
        for (name, text) in BUILTIN {
            let catalog =
                Catalog::parse(text, name).unwrap_or_else(|error| panic!("{name}: {error}"));
            assert_eq!(catalog.profile(), name);
            assert!(!catalog.description().is_empty());
            assert!(!catalog.roles().is_empty());
        }
        let names: Vec<_> = Catalog::builtin_profiles()
            .into_iter()
            .map(|profile| profile.name)
            .collect();
        assert_eq!(
            names,
            [
                "vkube",
                "kkp-seed",
                "kkp-user",
                "deckhouse",
                "palette",
                "vsphere-csi",
                "vsphere-cpi",
                "vsphere-cloud"
            ]
        );
        assert!(Catalog::builtin_profiles()
            .iter()
            .all(|profile| !profile.description.starts_with("(invalid")));
    }

    #[test]
    fn every_id_is_known() {
        for (name, _) in BUILTIN {
            for role in Catalog::builtin(name).unwrap().roles() {
                for privilege in role.privileges() {
                    assert!(
                        Registry::builtin().contains(privilege.id.as_str()),
                        "{name}/{}: {}",
                        role.name(),
                        privilege.id
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_profile() {
        let error = Catalog::builtin("kkp").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("unknown role profile `kkp`; profiles are `vkube`, `kkp-seed`"),
            "{error}"
        );
    }

    // Seed 000, `govc role.ls k8c-user-folder-propagate`.
    const KKP_USER_FOLDER_PROPAGATE: &str = "
        Folder.Create Folder.Delete Global.SetCustomField InventoryService.Tagging.ObjectAttachable
        System.Anonymous System.Read System.View
        VirtualMachine.Config.AddExistingDisk VirtualMachine.Config.AddNewDisk VirtualMachine.Config.AddRemoveDevice
        VirtualMachine.Config.AdvancedConfig VirtualMachine.Config.Annotation VirtualMachine.Config.CPUCount
        VirtualMachine.Config.ChangeTracking VirtualMachine.Config.DiskExtend VirtualMachine.Config.DiskLease
        VirtualMachine.Config.EditDevice VirtualMachine.Config.HostUSBDevice VirtualMachine.Config.ManagedBy
        VirtualMachine.Config.Memory VirtualMachine.Config.MksControl VirtualMachine.Config.QueryFTCompatibility
        VirtualMachine.Config.QueryUnownedFiles VirtualMachine.Config.RawDevice VirtualMachine.Config.ReloadFromPath
        VirtualMachine.Config.RemoveDisk VirtualMachine.Config.Rename VirtualMachine.Config.ResetGuestInfo
        VirtualMachine.Config.Resource VirtualMachine.Config.Settings VirtualMachine.Config.SwapPlacement
        VirtualMachine.Config.ToggleForkParent VirtualMachine.Config.Unlock VirtualMachine.Config.UpgradeVirtualHardware
        VirtualMachine.GuestOperations.Execute VirtualMachine.GuestOperations.Modify
        VirtualMachine.GuestOperations.ModifyAliases VirtualMachine.GuestOperations.Query
        VirtualMachine.GuestOperations.QueryAliases
        VirtualMachine.Interact.AnswerQuestion VirtualMachine.Interact.Backup VirtualMachine.Interact.ConsoleInteract
        VirtualMachine.Interact.CreateScreenshot VirtualMachine.Interact.CreateSecondary
        VirtualMachine.Interact.DefragmentAllDisks VirtualMachine.Interact.DeviceConnection
        VirtualMachine.Interact.DisableSecondary VirtualMachine.Interact.DnD VirtualMachine.Interact.EnableSecondary
        VirtualMachine.Interact.GuestControl VirtualMachine.Interact.MakePrimary VirtualMachine.Interact.Pause
        VirtualMachine.Interact.PowerOff VirtualMachine.Interact.PowerOn VirtualMachine.Interact.PutUsbScanCodes
        VirtualMachine.Interact.Record VirtualMachine.Interact.Replay VirtualMachine.Interact.Reset
        VirtualMachine.Interact.SESparseMaintenance VirtualMachine.Interact.SetCDMedia
        VirtualMachine.Interact.SetFloppyMedia VirtualMachine.Interact.Suspend
        VirtualMachine.Interact.TerminateFaultTolerantVM VirtualMachine.Interact.ToolsInstall
        VirtualMachine.Interact.TurnOffFaultTolerance
        VirtualMachine.Inventory.Create VirtualMachine.Inventory.CreateFromExisting VirtualMachine.Inventory.Delete
        VirtualMachine.Inventory.Move VirtualMachine.Inventory.Register VirtualMachine.Inventory.Unregister
        VirtualMachine.Provisioning.Clone VirtualMachine.Provisioning.CloneTemplate
        VirtualMachine.Provisioning.CreateTemplateFromVM VirtualMachine.Provisioning.Customize
        VirtualMachine.Provisioning.DeployTemplate VirtualMachine.Provisioning.DiskRandomAccess
        VirtualMachine.Provisioning.DiskRandomRead VirtualMachine.Provisioning.FileRandomAccess
        VirtualMachine.Provisioning.GetVmFiles VirtualMachine.Provisioning.MarkAsTemplate
        VirtualMachine.Provisioning.MarkAsVM VirtualMachine.Provisioning.ModifyCustSpecs
        VirtualMachine.Provisioning.PromoteDisks VirtualMachine.Provisioning.PutVmFiles
        VirtualMachine.Provisioning.ReadCustSpecs
        VirtualMachine.State.CreateSnapshot VirtualMachine.State.RemoveSnapshot VirtualMachine.State.RenameSnapshot
        VirtualMachine.State.RevertToSnapshot";

    #[test]
    fn kkp_user_lists_match_seed_000() {
        assert_eq!(
            ids("kkp-user", "k8c-user-folder-propagate"),
            words(KKP_USER_FOLDER_PROPAGATE)
        );
        assert_eq!(
            ids("kkp-user", "k8c-user-datastore-propagate"),
            words("Datastore.AllocateSpace Datastore.Browse Datastore.FileManagement")
        );
        // Seed order kept: `AttachTag` after `DeleteTag`, as `govc role.ls` printed it.
        assert_eq!(
            ids("kkp-user", "k8c-user-tags"),
            words(
                "InventoryService.Tagging.CreateTag InventoryService.Tagging.DeleteTag
                 InventoryService.Tagging.AttachTag InventoryService.Tagging.ObjectAttachable
                 System.Anonymous System.Read System.View"
            )
        );
        assert_eq!(
            ids("kkp-user", "k8c-user-vcenter"),
            words(
                "Cns.Searchable InventoryService.Tagging.ObjectAttachable StorageProfile.View
                 System.Anonymous System.Read System.View
                 VirtualMachine.Provisioning.ModifyCustSpecs VirtualMachine.Provisioning.ReadCustSpecs"
            )
        );
        assert_eq!(
            ids("kkp-user", "k8c-user-datacenter"),
            words(
                "Datastore.AllocateSpace Datastore.Browse Datastore.DeleteFile Datastore.FileManagement
                 InventoryService.Tagging.ObjectAttachable System.Anonymous System.Read System.View
                 VApp.ApplicationConfig VApp.InstanceConfig VirtualMachine.Config.CPUCount
                 VirtualMachine.Config.Memory VirtualMachine.Config.Settings
                 VirtualMachine.Inventory.CreateFromExisting"
            )
        );
        assert_eq!(
            ids("kkp-user", "k8c-user-cluster-propagate"),
            words(
                "Folder.Create Host.Config.Storage Host.Config.SystemManagement Host.Local.ReconfigVM
                 Resource.AssignVMToPool Resource.ColdMigrate Resource.HotMigrate
                 VApp.ApplicationConfig VApp.InstanceConfig"
            )
        );
        assert_eq!(
            ids("kkp-user", "k8c-network-attach"),
            words("Network.Assign")
        );
    }

    #[test]
    fn kkp_seed_lists_match_seed_000() {
        assert_eq!(
            ids("kkp-seed", "k8c-ccm-storage-vmfolder-propagate"),
            words(
                "Folder.Create Folder.Delete VirtualMachine.Config.AddExistingDisk VirtualMachine.Config.AddNewDisk
                 VirtualMachine.Config.AddRemoveDevice VirtualMachine.Config.RemoveDisk"
            )
        );
        assert_eq!(
            ids("kkp-seed", "k8c-ccm-storage-datastore-propagate"),
            words("Datastore.AllocateSpace Datastore.FileManagement")
        );
        assert!(Catalog::builtin("kkp-seed")
            .unwrap()
            .role("ReadOnly")
            .unwrap()
            .is_builtin());
    }

    #[test]
    fn system_privileges_exactly_where_the_listing_has_them() {
        let with_system = [
            "k8c-user-vcenter",
            "k8c-user-datacenter",
            "k8c-user-folder-propagate",
            "k8c-user-tags",
        ];
        let catalog = Catalog::builtin("kkp-user").unwrap();
        for role in catalog.roles() {
            let has = role
                .privileges()
                .iter()
                .any(|privilege| privilege.id.is_implied_system());
            assert_eq!(has, with_system.contains(&role.name()), "{}", role.name());
        }
        let seed = Catalog::builtin("kkp-seed").unwrap();
        assert!(seed
            .roles()
            .iter()
            .flat_map(|role| role.privileges())
            .all(|privilege| !privilege.id.is_implied_system()));
    }

    #[test]
    fn kkp_grants_match_seed_001_tree() {
        use Slot::*;
        assert_eq!(
            grants("kkp-seed", "k8c-ccm-storage-vmfolder-propagate"),
            [(VmFolder, true), (TemplateFolder, true)]
        );
        assert_eq!(
            grants("kkp-seed", "k8c-ccm-storage-datastore-propagate"),
            [(Datastore, true)]
        );
        assert_eq!(grants("kkp-seed", "ReadOnly"), [(Datacenter, false)]);
        assert_eq!(grants("kkp-user", "k8c-user-vcenter"), [(Vcenter, false)]);
        assert_eq!(
            grants("kkp-user", "k8c-user-datacenter"),
            [(Datacenter, false)]
        );
        assert_eq!(
            grants("kkp-user", "k8c-user-cluster-propagate"),
            [(ComputeCluster, true)]
        );
        assert_eq!(grants("kkp-user", "k8c-network-attach"), [(Network, false)]);
        assert_eq!(
            grants("kkp-user", "k8c-user-datastore-propagate"),
            [(Datastore, true), (DatastoreCluster, true)]
        );
        assert_eq!(
            grants("kkp-user", "k8c-user-folder-propagate"),
            [(VmFolder, true), (TemplateFolder, true)]
        );
        // Not in the 001 tree; see the role's `purpose`.
        assert_eq!(grants("kkp-user", "k8c-user-tags"), [(Vcenter, false)]);
    }

    // Seed 003, `govc role.create kubernetes …`.
    const DECKHOUSE_KUBERNETES: &str = "
        Datastore.AllocateSpace Datastore.Browse Datastore.FileManagement Global.GlobalTag Global.SystemTag
        InventoryService.Tagging.AttachTag InventoryService.Tagging.CreateCategory InventoryService.Tagging.CreateTag
        InventoryService.Tagging.DeleteCategory InventoryService.Tagging.DeleteTag InventoryService.Tagging.EditCategory
        InventoryService.Tagging.EditTag InventoryService.Tagging.ModifyUsedByForCategory
        InventoryService.Tagging.ModifyUsedByForTag Network.Assign Resource.AssignVMToPool Resource.ColdMigrate
        Resource.HotMigrate Resource.CreatePool Resource.DeletePool Resource.RenamePool Resource.EditPool
        Resource.MovePool StorageProfile.View System.Anonymous System.Read System.View
        VirtualMachine.Config.AddExistingDisk VirtualMachine.Config.AddNewDisk VirtualMachine.Config.AddRemoveDevice
        VirtualMachine.Config.AdvancedConfig VirtualMachine.Config.Annotation VirtualMachine.Config.CPUCount
        VirtualMachine.Config.ChangeTracking VirtualMachine.Config.DiskExtend VirtualMachine.Config.DiskLease
        VirtualMachine.Config.EditDevice VirtualMachine.Config.HostUSBDevice VirtualMachine.Config.ManagedBy
        VirtualMachine.Config.Memory VirtualMachine.Config.MksControl VirtualMachine.Config.QueryFTCompatibility
        VirtualMachine.Config.QueryUnownedFiles VirtualMachine.Config.RawDevice VirtualMachine.Config.ReloadFromPath
        VirtualMachine.Config.RemoveDisk VirtualMachine.Config.Rename VirtualMachine.Config.ResetGuestInfo
        VirtualMachine.Config.Resource VirtualMachine.Config.Settings VirtualMachine.Config.SwapPlacement
        VirtualMachine.Config.ToggleForkParent VirtualMachine.Config.UpgradeVirtualHardware
        VirtualMachine.GuestOperations.Execute VirtualMachine.GuestOperations.Modify
        VirtualMachine.GuestOperations.ModifyAliases VirtualMachine.GuestOperations.Query
        VirtualMachine.GuestOperations.QueryAliases VirtualMachine.Hbr.ConfigureReplication
        VirtualMachine.Hbr.MonitorReplication VirtualMachine.Hbr.ReplicaManagement
        VirtualMachine.Interact.AnswerQuestion VirtualMachine.Interact.Backup VirtualMachine.Interact.ConsoleInteract
        VirtualMachine.Interact.CreateScreenshot VirtualMachine.Interact.CreateSecondary
        VirtualMachine.Interact.DefragmentAllDisks VirtualMachine.Interact.DeviceConnection
        VirtualMachine.Interact.DisableSecondary VirtualMachine.Interact.DnD VirtualMachine.Interact.EnableSecondary
        VirtualMachine.Interact.GuestControl VirtualMachine.Interact.MakePrimary VirtualMachine.Interact.Pause
        VirtualMachine.Interact.PowerOff VirtualMachine.Interact.PowerOn VirtualMachine.Interact.PutUsbScanCodes
        VirtualMachine.Interact.Record VirtualMachine.Interact.Replay VirtualMachine.Interact.Reset
        VirtualMachine.Interact.SESparseMaintenance VirtualMachine.Interact.SetCDMedia
        VirtualMachine.Interact.SetFloppyMedia VirtualMachine.Interact.Suspend
        VirtualMachine.Interact.TerminateFaultTolerantVM VirtualMachine.Interact.ToolsInstall
        VirtualMachine.Interact.TurnOffFaultTolerance VirtualMachine.Inventory.Create
        VirtualMachine.Inventory.CreateFromExisting VirtualMachine.Inventory.Delete VirtualMachine.Inventory.Move
        VirtualMachine.Inventory.Register VirtualMachine.Inventory.Unregister VirtualMachine.Namespace.Event
        VirtualMachine.Namespace.EventNotify VirtualMachine.Namespace.Management VirtualMachine.Namespace.ModifyContent
        VirtualMachine.Namespace.Query VirtualMachine.Namespace.ReadContent VirtualMachine.Provisioning.Clone
        VirtualMachine.Provisioning.CloneTemplate VirtualMachine.Provisioning.CreateTemplateFromVM
        VirtualMachine.Provisioning.Customize VirtualMachine.Provisioning.DeployTemplate
        VirtualMachine.Provisioning.DiskRandomAccess VirtualMachine.Provisioning.DiskRandomRead
        VirtualMachine.Provisioning.FileRandomAccess VirtualMachine.Provisioning.GetVmFiles
        VirtualMachine.Provisioning.MarkAsTemplate VirtualMachine.Provisioning.MarkAsVM
        VirtualMachine.Provisioning.ModifyCustSpecs VirtualMachine.Provisioning.PromoteDisks
        VirtualMachine.Provisioning.PutVmFiles VirtualMachine.Provisioning.ReadCustSpecs
        VirtualMachine.State.CreateSnapshot VirtualMachine.State.RemoveSnapshot VirtualMachine.State.RenameSnapshot
        VirtualMachine.State.RevertToSnapshot";

    #[test]
    fn deckhouse_matches_seed_003() {
        let catalog = Catalog::builtin("deckhouse").unwrap();
        assert_eq!(catalog.roles().len(), 1);
        assert_eq!(ids("deckhouse", "kubernetes"), words(DECKHOUSE_KUBERNETES));
        // `govc permissions.set` without `-propagate` propagates.
        assert_eq!(
            grants("deckhouse", "kubernetes"),
            [(Slot::Datacenter, true)]
        );
    }

    #[test]
    fn palette_privileges_all_carry_the_seed_label() {
        let catalog = Catalog::builtin("palette").unwrap();
        let names: Vec<_> = catalog.roles().iter().map(|role| role.name()).collect();
        assert_eq!(names, ["palette-root", "palette-spectro"]);
        assert_eq!(catalog.role("palette-root").unwrap().privileges().len(), 9);
        assert_eq!(
            catalog.role("palette-spectro").unwrap().privileges().len(),
            102
        );
        for role in catalog.roles() {
            for privilege in role.privileges() {
                assert!(
                    privilege.label.is_some(),
                    "{}: {}",
                    role.name(),
                    privilege.id
                );
            }
        }
        let label = |id: &str| {
            catalog
                .role("palette-spectro")
                .unwrap()
                .privileges()
                .iter()
                .find(|p| p.id.as_str() == id)
                .unwrap()
                .label
                .clone()
        };
        assert_eq!(
            label("VirtualMachine.Config.MksControl").as_deref(),
            Some("Virtual machines > Change Configuration > Display connection settings")
        );
        assert_eq!(
            label("VirtualMachine.Inventory.Delete").as_deref(),
            Some("Virtual machines > Edit Inventory > Remove")
        );
        assert_eq!(
            label("VApp.ExtractOvfEnvironment").as_deref(),
            Some("vApp > View OVF environment")
        );
    }

    #[test]
    fn vsphere_csi_roles() {
        assert_eq!(
            ids("vsphere-csi", "CNS-DATASTORE"),
            words("Datastore.FileManagement")
        );
        assert_eq!(
            ids("vsphere-csi", "CNS-HOST-CONFIG-STORAGE"),
            words("Host.Config.Storage")
        );
        assert_eq!(
            ids("vsphere-csi", "CNS-VM"),
            words("VirtualMachine.Config.AddExistingDisk VirtualMachine.Config.AddRemoveDevice")
        );
        assert_eq!(
            ids("vsphere-csi", "CNS-SEARCH-AND-SPBM"),
            words("Cns.Searchable StorageProfile.View")
        );
        assert_eq!(grants("vsphere-csi", "CNS-VM"), [(Slot::NodeVms, false)]);
        assert_eq!(
            grants("vsphere-csi", "CNS-SEARCH-AND-SPBM"),
            [(Slot::Vcenter, false)]
        );
    }

    #[test]
    fn vsphere_cpi_is_read_only() {
        let catalog = Catalog::builtin("vsphere-cpi").unwrap();
        assert!(catalog
            .roles()
            .iter()
            .all(|role| role.is_builtin() && role.name() == "ReadOnly"));
    }

    #[test]
    fn vkube_profile_is_least_privilege_and_explained() {
        let catalog = Catalog::builtin("vkube").unwrap();
        assert!(catalog.requires_reasons());
        let all: BTreeSet<String> = catalog
            .roles()
            .iter()
            .flat_map(|role| role.privileges())
            .map(|privilege| {
                let reason = privilege.reason.as_deref().unwrap_or_default();
                assert!(
                    reason.contains('`'),
                    "{}: reason should name the API call",
                    privilege.id
                );
                privilege.id.to_string()
            })
            .collect();
        for needed in [
            "VirtualMachine.Provisioning.Clone",
            "VirtualMachine.Provisioning.DeployTemplate",
            "VirtualMachine.Provisioning.MarkAsTemplate",
            "VirtualMachine.Inventory.CreateFromExisting",
            "VirtualMachine.Inventory.Delete",
            "VirtualMachine.Interact.PowerOn",
            "VirtualMachine.Interact.PowerOff",
            "Resource.AssignVMToPool",
            "Datastore.AllocateSpace",
            "Datastore.FileManagement",
            "Datastore.Browse",
            "Network.Assign",
            "StorageProfile.View",
            "Folder.Create",
            "Folder.Delete",
            "VApp.Import",
            "VirtualMachine.State.CreateSnapshot",
            "VirtualMachine.Provisioning.MarkAsVM",
            "InventoryService.Tagging.AttachTag",
            "Authorization.ModifyRoles",
            "Authorization.ModifyPermissions",
        ] {
            assert!(all.contains(needed), "{needed}");
        }
        // Nothing that vkube never calls.
        for excess in [
            "VirtualMachine.GuestOperations.Execute",
            "VirtualMachine.State.RemoveSnapshot",
            "Host.Config.Storage",
        ] {
            assert!(!all.contains(excess), "{excess}");
        }
        // Role administration is optional: only `roles apply` needs it.
        for role in catalog.roles() {
            let administers = role
                .privileges()
                .iter()
                .any(|privilege| privilege.id.group() == "Authorization");
            assert_eq!(administers, role.is_optional(), "{}", role.name());
        }
    }

    /// `vsphere-cloud` holds every privilege `vsphere-cpi` and
    /// `vsphere-csi` require (optional roles aside), with one role per slot.
    #[test]
    fn vsphere_cloud_is_the_union_of_cpi_and_csi() {
        use std::collections::BTreeSet;
        let required = |profile: &str| -> BTreeSet<String> {
            Catalog::builtin(profile)
                .unwrap()
                .roles()
                .iter()
                .filter(|role| !role.is_optional())
                .flat_map(|role| role.privileges().iter().map(|p| p.id.to_string()))
                .collect()
        };
        let cloud = required("vsphere-cloud");
        for profile in ["vsphere-cpi", "vsphere-csi"] {
            let missing: Vec<_> = required(profile).difference(&cloud).cloned().collect();
            assert!(
                missing.is_empty(),
                "vsphere-cloud lacks {missing:?} of {profile}"
            );
        }
        let catalog = Catalog::builtin("vsphere-cloud").unwrap();
        let mut slots = BTreeSet::new();
        for role in catalog.roles() {
            for grant in role.grants() {
                assert!(slots.insert(grant.slot), "two roles on slot {}", grant.slot);
            }
        }
    }
}
