//! Slots: the kinds of inventory object a role is granted on.
//!
//! Owns the slot names (kebab-case, as in catalogs and `SLOT=PATH`
//! bindings), their placeholders and their place in the inventory tree. It
//! does not know which object a slot is bound to; see `binding`.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::privilege::edit_distance;
use super::Error;

/// A kind of vSphere inventory object a role is granted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// The vCenter root folder.
    Vcenter,
    /// A datacenter.
    Datacenter,
    /// A compute cluster (its hosts and resource pools are its children).
    ComputeCluster,
    /// A single datastore.
    Datastore,
    /// A datastore cluster (storage pod); its datastores are its children.
    DatastoreCluster,
    /// A network or distributed port group.
    Network,
    /// The VM folder that holds the node VMs (directly or in subfolders).
    VmFolder,
    /// The folder that holds node image templates.
    TemplateFolder,
    /// Each node VM itself.
    NodeVms,
}

impl Slot {
    /// Every slot, from the inventory root downwards.
    pub const ALL: [Slot; 9] = [
        Slot::Vcenter,
        Slot::Datacenter,
        Slot::ComputeCluster,
        Slot::Datastore,
        Slot::DatastoreCluster,
        Slot::Network,
        Slot::VmFolder,
        Slot::TemplateFolder,
        Slot::NodeVms,
    ];

    /// The kebab-case name used in catalogs and bindings.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Vcenter => "vcenter",
            Slot::Datacenter => "datacenter",
            Slot::ComputeCluster => "compute-cluster",
            Slot::Datastore => "datastore",
            Slot::DatastoreCluster => "datastore-cluster",
            Slot::Network => "network",
            Slot::VmFolder => "vm-folder",
            Slot::TemplateFolder => "template-folder",
            Slot::NodeVms => "node-vms",
        }
    }

    /// The shell variable an export uses when the slot is unbound, e.g.
    /// `VM_FOLDER_PATH`.
    pub fn placeholder(self) -> String {
        format!(
            "{}_PATH",
            self.as_str().replace('-', "_").to_ascii_uppercase()
        )
    }

    /// The inventory path every vCenter gives this slot, if there is one:
    /// the root folder is always `/`.
    pub fn fixed_path(self) -> Option<&'static str> {
        match self {
            Slot::Vcenter => Some("/"),
            _ => None,
        }
    }

    /// Slots whose objects contain this slot's objects in the inventory, so a
    /// propagating grant there is also effective here.
    ///
    /// Virtual machines inherit from both their folder and their
    /// cluster/resource pool (vSphere Security, "Permission Inheritance").
    /// A standalone datastore has no datastore cluster above it, so
    /// `datastore-cluster` is not listed for `datastore`; datastores inside a
    /// bound datastore cluster are covered by the cluster's grants with
    /// `inherited_by_children`.
    pub fn ancestors(self) -> &'static [Slot] {
        match self {
            Slot::Vcenter => &[],
            Slot::Datacenter => &[Slot::Vcenter],
            Slot::ComputeCluster
            | Slot::Datastore
            | Slot::DatastoreCluster
            | Slot::Network
            | Slot::VmFolder
            | Slot::TemplateFolder => &[Slot::Vcenter, Slot::Datacenter],
            Slot::NodeVms => &[
                Slot::Vcenter,
                Slot::Datacenter,
                Slot::ComputeCluster,
                Slot::VmFolder,
            ],
        }
    }

    /// All slot names, backticked and comma-separated, for messages.
    pub fn names() -> String {
        Slot::ALL
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parses a slot name, reporting an unknown one with a suggestion but no
    /// location (callers add it).
    fn parse_name(value: &str) -> Result<Slot, Error> {
        Slot::ALL
            .into_iter()
            .find(|slot| slot.as_str() == value)
            .ok_or_else(|| Error::UnknownSlot {
                file: None,
                line: None,
                value: value.to_owned(),
                suggestion: Slot::suggest(value),
            })
    }

    fn suggest(value: &str) -> Option<&'static str> {
        let normalized = value.to_ascii_lowercase().replace('_', "-");
        Slot::ALL
            .into_iter()
            .map(|slot| (edit_distance(&normalized, slot.as_str()), slot.as_str()))
            .filter(|(distance, _)| *distance <= 3)
            .min_by_key(|(distance, _)| *distance)
            .map(|(_, name)| name)
    }
}

impl FromStr for Slot {
    type Err = Error;

    fn from_str(value: &str) -> Result<Slot, Error> {
        Slot::parse_name(value)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Slot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for slot in Slot::ALL {
            assert_eq!(slot.as_str().parse::<Slot>().unwrap(), slot);
        }
    }

    #[test]
    fn placeholders() {
        assert_eq!(Slot::VmFolder.placeholder(), "VM_FOLDER_PATH");
        assert_eq!(Slot::Vcenter.placeholder(), "VCENTER_PATH");
        assert_eq!(Slot::Vcenter.fixed_path(), Some("/"));
        assert_eq!(Slot::VmFolder.fixed_path(), None);
    }

    #[test]
    fn unknown_slot_suggests() {
        match "vm_folder".parse::<Slot>() {
            Err(Error::UnknownSlot { suggestion, .. }) => assert_eq!(suggestion, Some("vm-folder")),
            other => panic!("{other:?}"),
        }
        match "resource-pool".parse::<Slot>() {
            Err(Error::UnknownSlot { suggestion, .. }) => assert_eq!(suggestion, None),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ancestors_come_before_their_children() {
        for slot in Slot::ALL {
            for ancestor in slot.ancestors() {
                assert!(*ancestor < slot, "{ancestor} above {slot}");
            }
        }
    }
}
