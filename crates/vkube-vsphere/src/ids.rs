//! vkube's own names for vCenter objects: a type and an id
//! ([`ObjectRef`]), and one newtype per kind of object the runtime passes
//! around ([`VmId`], [`FolderId`], …), so a folder cannot be handed where a
//! VM is meant and no `vim_rs` type crosses this crate's port.

use std::fmt;

use serde::{Deserialize, Serialize};
use vim_rs::types::enums::MoTypesEnum;
use vim_rs::types::structs::ManagedObjectReference;

use crate::inventory::Entity;

/// A managed object: its type (`VirtualMachine`) and id (`vm-42`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// Managed object type, e.g. `Folder`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Managed object id, e.g. `group-v4`.
    pub id: String,
}

impl ObjectRef {
    /// The object of type `type_name` with id `id`.
    pub fn new(type_name: impl Into<String>, id: impl Into<String>) -> ObjectRef {
        ObjectRef {
            type_name: type_name.into(),
            id: id.into(),
        }
    }

    /// The reference `vim_rs` calls take.
    pub(crate) fn moref(&self) -> ManagedObjectReference {
        ManagedObjectReference {
            r#type: MoTypesEnum::from_str(&self.type_name),
            value: self.id.clone(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.type_name, self.id)
    }
}

/// Defines a newtype over [`ObjectRef`] for objects of the given types (the
/// first is what `new` makes).
macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident: $default:literal $(, $other:literal)*) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(ObjectRef);

        impl $name {
            /// The managed object types this id may name.
            pub const TYPES: &'static [&'static str] = &[$default $(, $other)*];

            #[doc = concat!("The `", $default, "` with id `id`.")]
            pub fn new(id: impl Into<String>) -> Self {
                $name(ObjectRef::new($default, id))
            }

            /// `object` as this kind of id, if it is of one of [`Self::TYPES`].
            pub fn from_object(object: ObjectRef) -> Option<Self> {
                Self::TYPES
                    .contains(&object.type_name.as_str())
                    .then_some($name(object))
            }

            /// The id of an inventory entity, if it is this kind of object.
            pub fn of(entity: &Entity) -> Option<Self> {
                Self::from_object(entity.object())
            }

            /// The managed object id, e.g. `vm-42`.
            pub fn id(&self) -> &str {
                &self.0.id
            }

            /// The object with its type.
            pub fn object(&self) -> &ObjectRef {
                &self.0
            }

            /// The reference `vim_rs` calls take.
            #[allow(dead_code)]
            pub(crate) fn moref(&self) -> ManagedObjectReference {
                self.0.moref()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0.id)
            }
        }
    };
}

typed_id!(
    /// A virtual machine or template.
    VmId: "VirtualMachine"
);
typed_id!(
    /// A folder.
    FolderId: "Folder"
);
typed_id!(
    /// An ESXi host.
    HostId: "HostSystem"
);
typed_id!(
    /// A datastore.
    DatastoreId: "Datastore"
);
typed_id!(
    /// A datastore cluster (storage pod).
    DatastoreClusterId: "StoragePod"
);
typed_id!(
    /// A resource pool or vApp.
    ResourcePoolId: "ResourcePool", "VirtualApp"
);
typed_id!(
    /// A standard, distributed or opaque network.
    NetworkId: "Network", "DistributedVirtualPortgroup", "OpaqueNetwork"
);
typed_id!(
    /// A VM snapshot.
    SnapshotId: "VirtualMachineSnapshot"
);
typed_id!(
    /// A compute cluster or the compute resource of a standalone host.
    ComputeResourceId: "ClusterComputeResource", "ComputeResource"
);

impl NetworkId {
    /// Whether this is a distributed port group (its NIC backing names the
    /// switch and port group key rather than the network).
    pub fn is_distributed(&self) -> bool {
        self.0.type_name == "DistributedVirtualPortgroup"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_ids_accept_only_their_types() {
        let vm = ObjectRef::new("VirtualMachine", "vm-42");
        assert_eq!(VmId::from_object(vm.clone()), Some(VmId::new("vm-42")));
        assert_eq!(FolderId::from_object(vm.clone()), None);
        let vapp = ObjectRef::new("VirtualApp", "resgroup-v7");
        assert_eq!(
            ResourcePoolId::from_object(vapp.clone()).map(|p| p.object().clone()),
            Some(vapp)
        );
        let pg = NetworkId::from_object(ObjectRef::new("DistributedVirtualPortgroup", "dvpg-1"));
        assert!(pg.is_some_and(|n| n.is_distributed()));
        assert_eq!(VmId::new("vm-42").to_string(), "vm-42");
        let moref = VmId::new("vm-42").moref();
        assert_eq!(
            (moref.r#type.as_str(), moref.value.as_str()),
            ("VirtualMachine", "vm-42")
        );
    }
}
