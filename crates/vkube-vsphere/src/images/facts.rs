//! Reading what the template check needs from vCenter: hardware version,
//! flags, snapshot, NICs, guest id, vApp properties and vkube's image
//! record — for one VM, or for every template and vkube-imported image.

use std::collections::BTreeMap;

use vim_rs::types::boxed_types::ValueElements;
use vim_rs::types::convert::CastInto;
use vim_rs::types::structs::{
    ManagedObjectReference, VirtualDisk, VirtualE1000, VirtualE1000E, VirtualMachineSnapshotTree,
    VirtualPcNet32, VirtualSriovEthernetCard, VirtualVmxnet2, VirtualVmxnet3, VirtualVmxnet3Vrdma,
    VmConfigInfo,
};
use vim_rs::types::traits::{OptionValueTrait, VirtualDeviceTrait, VirtualEthernetCardTrait};
use vim_rs::types::vim_any::VimAny;
use vkube_core::images::{ImageRecord, NicKind, TemplateFacts};

use crate::collect::{retrieve_objects, ObjectProps, Wanted};
use crate::error::Result;
use crate::inventory::{Details, Inventory};
use crate::session::Session;

const PATHS: &[&str] = &[
    "name",
    "config.template",
    "config.version",
    "config.flags.diskUuidEnabled",
    "config.extraConfig",
    "config.hardware.device",
    "config.guestId",
    "snapshot.currentSnapshot",
    "snapshot.rootSnapshotList",
];

fn nic_kind(device: &(dyn VirtualDeviceTrait + 'static)) -> Option<NicKind> {
    CastInto::<dyn VirtualEthernetCardTrait>::into_ref(device)?;
    let any = device.as_any_ref();
    if any.is::<VirtualVmxnet3>() || any.is::<VirtualVmxnet3Vrdma>() {
        return Some(NicKind::Vmxnet3);
    }
    let name = if any.is::<VirtualE1000>() {
        "e1000"
    } else if any.is::<VirtualE1000E>() {
        "e1000e"
    } else if any.is::<VirtualVmxnet2>() {
        "vmxnet2"
    } else if any.is::<VirtualPcNet32>() {
        "pcnet32"
    } else if any.is::<VirtualSriovEthernetCard>() {
        "sriov"
    } else {
        "another adapter type"
    };
    Some(NicKind::Other(name.into()))
}

fn snapshot_name(
    trees: &[VirtualMachineSnapshotTree],
    current: &ManagedObjectReference,
) -> Option<String> {
    trees.iter().find_map(|t| {
        if t.snapshot.value == current.value {
            Some(t.name.clone())
        } else {
            snapshot_name(
                t.child_snapshot_list.as_deref().unwrap_or_default(),
                current,
            )
        }
    })
}

fn string_value(value: &Option<VimAny>) -> String {
    match value {
        Some(VimAny::Value(ValueElements::PrimitiveString(s))) => s.clone(),
        _ => String::new(),
    }
}

fn facts_of(mut props: ObjectProps, path: String) -> TemplateFacts {
    let extra: BTreeMap<String, String> = props
        .take::<Vec<Box<dyn OptionValueTrait>>>("config.extraConfig")
        .unwrap_or_default()
        .into_iter()
        .map(|o| {
            let o = o.get_option_value();
            (o.key.clone(), string_value(&o.value))
        })
        .collect();
    let devices = props
        .take::<Vec<Box<dyn VirtualDeviceTrait>>>("config.hardware.device")
        .unwrap_or_default();
    let nics = devices
        .iter()
        .filter_map(|d| nic_kind(d.as_ref()))
        .collect();
    let disk_bytes = devices
        .iter()
        .filter_map(|d| d.as_any_ref().downcast_ref::<VirtualDisk>())
        .map(|d| u64::try_from(d.capacity_in_kb).unwrap_or(0) * 1024)
        .sum();
    let current = props.take::<ManagedObjectReference>("snapshot.currentSnapshot");
    let trees = props
        .take::<Vec<VirtualMachineSnapshotTree>>("snapshot.rootSnapshotList")
        .unwrap_or_default();
    let snapshot = current.map(|c| snapshot_name(&trees, &c).unwrap_or(c.value));
    let flag = props
        .take::<bool>("config.flags.diskUuidEnabled")
        .unwrap_or(false);
    let extra_uuid = extra
        .get("disk.enableUUID")
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
    // The simulator keeps OVF properties in extraConfig; vCenter in vAppConfig.
    let properties = extra
        .iter()
        .filter(|(k, _)| k.starts_with("guestinfo."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    TemplateFacts {
        name: props.string("name").unwrap_or_default(),
        path,
        template: props.take("config.template").unwrap_or(false),
        hardware_version: props
            .string("config.version")
            .and_then(|v| v.strip_prefix("vmx-")?.parse().ok()),
        disk_uuid_enabled: flag || extra_uuid,
        snapshot,
        nics,
        guest_id: props.string("config.guestId").filter(|g| !g.is_empty()),
        properties,
        record: ImageRecord::from_extra_config(&extra),
        disk_bytes,
    }
}

/// vApp properties of `vms` (key → value), read apart: a VM without vApp
/// options has no `config.vAppConfig` at all.
async fn vapp_properties(
    session: &Session,
    vms: &[ManagedObjectReference],
) -> BTreeMap<String, BTreeMap<String, String>> {
    let Ok(objects) = retrieve_objects(
        session,
        vms,
        &[Wanted {
            type_name: "VirtualMachine",
            paths: &["config.vAppConfig"],
        }],
    )
    .await
    else {
        return BTreeMap::new();
    };
    objects
        .into_iter()
        .filter_map(|mut p| {
            let config =
                p.take::<Box<dyn vim_rs::types::traits::VmConfigInfoTrait>>("config.vAppConfig")?;
            let info = config.as_any_ref().downcast_ref::<VmConfigInfo>()?;
            let props = info
                .property
                .iter()
                .flatten()
                .filter_map(|prop| {
                    let id = prop.id.clone()?;
                    let value = prop
                        .value
                        .clone()
                        .filter(|v| !v.is_empty())
                        .or_else(|| prop.default_value.clone())
                        .unwrap_or_default();
                    Some((id, value))
                })
                .collect();
            Some((p.obj.value.clone(), props))
        })
        .collect()
}

/// Facts about VMs (paths from `inventory`); VMs that are gone are left out.
pub async fn read(
    session: &Session,
    inventory: &Inventory,
    vms: &[ManagedObjectReference],
) -> Result<Vec<TemplateFacts>> {
    let objects = retrieve_objects(
        session,
        vms,
        &[Wanted {
            type_name: "VirtualMachine",
            paths: PATHS,
        }],
    )
    .await?;
    let mut vapp = vapp_properties(session, vms).await;
    Ok(objects
        .into_iter()
        .map(|props| {
            let id = props.obj.value.clone();
            let mut facts = facts_of(props, inventory.path(&id));
            if let Some(more) = vapp.remove(&id) {
                facts.properties.extend(more);
            }
            facts
        })
        .collect())
}

/// Facts about one VM.
pub async fn read_one(
    session: &Session,
    inventory: &Inventory,
    vm: &ManagedObjectReference,
) -> Result<Option<TemplateFacts>> {
    Ok(read(session, inventory, std::slice::from_ref(vm))
        .await?
        .into_iter()
        .next())
}

/// Every template, and every VM vkube imported, with its facts and
/// reference, sorted by path.
pub async fn list(
    session: &Session,
    inventory: &Inventory,
) -> Result<Vec<(ManagedObjectReference, TemplateFacts)>> {
    let vms: Vec<ManagedObjectReference> = inventory
        .select(|d| matches!(d, Details::VirtualMachine { .. }))
        .into_iter()
        .map(|e| e.moref().clone())
        .collect();
    let facts = read(session, inventory, &vms).await?;
    let mut out: Vec<(ManagedObjectReference, TemplateFacts)> = facts
        .into_iter()
        .filter(|f| f.template || f.record.is_recorded())
        .filter_map(|f| {
            let entity = inventory.resolve(&f.path, "VM").ok()?;
            Some((entity.moref().clone(), f))
        })
        .collect();
    out.sort_by(|a, b| a.1.path.cmp(&b.1.path));
    Ok(out)
}
