//! Node VM operations: folders, clones, reconfiguration, power, destroy,
//! Storage DRS placement, and observing the VMs of a folder in one call.
//! Every operation is idempotent where vSphere allows it: "already exists"
//! and "already gone" count as success, so an interrupted apply can run again.

use std::collections::BTreeMap;
use std::time::Duration;

use vim_rs::types::boxed_types::ValueElements;
use vim_rs::types::convert::CastInto;
use vim_rs::types::enums::{
    VirtualDeviceConfigSpecOperationEnum, VirtualMachineMovePriorityEnum,
    VirtualMachinePowerStateEnum,
};
use vim_rs::types::structs::{
    DistributedVirtualSwitchPortConnection, ManagedObjectReference, OptionValue, PodDiskLocator,
    StorageDrsPodSelectionSpec, StoragePlacementSpec, VirtualDeviceConfigSpec,
    VirtualDeviceDeviceBackingInfo, VirtualDisk,
    VirtualEthernetCardDistributedVirtualPortBackingInfo, VirtualEthernetCardNetworkBackingInfo,
    VirtualMachineCloneSpec, VirtualMachineConfigSpec, VirtualMachineFlagInfo,
    VirtualMachineRelocateSpec, VmPodConfigForPlacement,
};
use vim_rs::types::traits::{OptionValueTrait, VirtualDeviceTrait, VirtualEthernetCardTrait};
use vim_rs::types::vim_any::VimAny;

use crate::collect::{
    retrieve_children, retrieve_container, retrieve_objects, ObjectProps, Wanted,
};
use crate::error::{Error, Result};
use crate::fault::Fault;
use crate::ids::{DatastoreId, FolderId, NetworkId, ResourcePoolId, SnapshotId, VmId};
use crate::session::Session;

/// The network a NIC should be on, with what its backing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkTarget {
    /// A standard port group.
    Standard {
        /// The network.
        network: NetworkId,
        /// Its name (the backing's device name).
        name: String,
    },
    /// A distributed port group.
    Distributed {
        /// The port group.
        portgroup: NetworkId,
        /// Its key.
        key: String,
        /// UUID of its switch.
        switch_uuid: String,
    },
}

impl NetworkTarget {
    /// Look up what a NIC backing needs for `network` (one or two round trips).
    pub async fn resolve(session: &Session, network: &NetworkId) -> Result<NetworkTarget> {
        let reference = network.moref();
        if !network.is_distributed() {
            let mut props = retrieve_objects(
                session,
                std::slice::from_ref(&reference),
                &[Wanted {
                    type_name: reference.r#type.as_str(),
                    paths: &["name"],
                }],
            )
            .await?;
            let name = props
                .first_mut()
                .and_then(|p| p.string("name"))
                .unwrap_or_default();
            return Ok(NetworkTarget::Standard {
                network: network.clone(),
                name,
            });
        }
        let mut pg = retrieve_objects(
            session,
            std::slice::from_ref(&reference),
            &[Wanted {
                type_name: "DistributedVirtualPortgroup",
                paths: &["key", "config.distributedVirtualSwitch"],
            }],
        )
        .await?;
        let pg = pg
            .first_mut()
            .ok_or_else(|| not_found("network", network.id()))?;
        let key = pg.string("key").unwrap_or_default();
        let switch = pg
            .take::<ManagedObjectReference>("config.distributedVirtualSwitch")
            .ok_or_else(|| Error::Protocol {
                operation: "reading a port group".into(),
                detail: "it has no switch".into(),
            })?;
        let mut dvs = retrieve_objects(
            session,
            std::slice::from_ref(&switch),
            &[Wanted {
                type_name: switch.r#type.as_str(),
                paths: &["uuid"],
            }],
        )
        .await?;
        let switch_uuid = dvs
            .first_mut()
            .and_then(|p| p.string("uuid"))
            .unwrap_or_default();
        Ok(NetworkTarget::Distributed {
            portgroup: network.clone(),
            key,
            switch_uuid,
        })
    }

    /// The network this target is.
    pub fn network(&self) -> &NetworkId {
        match self {
            NetworkTarget::Standard { network, .. } => network,
            NetworkTarget::Distributed { portgroup, .. } => portgroup,
        }
    }

    /// What an observed NIC reports as its network when it is on this
    /// target ([`ObservedVm::network`]): the network's id, or a distributed
    /// port group's key.
    pub fn observed_key(&self) -> &str {
        match self {
            NetworkTarget::Standard { network, .. } => network.id(),
            NetworkTarget::Distributed { key, .. } => key,
        }
    }
}

fn not_found(kind: &str, id: &str) -> Error {
    Error::NotFound {
        kind: kind.into(),
        path: id.into(),
        parent: "/".into(),
        missing: id.into(),
    }
}

/// The VM settings vkube manages; `None` leaves a setting as cloned.
/// `Debug` shows `guestinfo.*` values only by their length: they hold the
/// bootstrap data, and with it a bootstrap token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct VmSettings {
    /// vCPUs.
    pub num_cpus: Option<i32>,
    /// Memory in MiB.
    pub memory_mib: Option<i64>,
    /// Size of the first disk in GiB (only grows).
    pub disk_gib: Option<i64>,
    /// Network of the first NIC.
    pub network: Option<NetworkTarget>,
    /// MAC of the first NIC, assigned manually (VMware's manual range, see
    /// `vkube_core::cluster::mac`); `None` leaves vCenter's.
    pub mac: Option<String>,
    /// extraConfig keys to set (markers, guestinfo).
    pub extra_config: BTreeMap<String, String>,
    /// `disk.enableUUID`, as `flags.diskUuidEnabled`.
    pub disk_uuid_enabled: bool,
    /// The VM's annotation (notes).
    pub annotation: Option<String>,
}

impl std::fmt::Debug for VmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let extra_config: BTreeMap<&str, String> = self
            .extra_config
            .iter()
            .map(|(key, value)| {
                let shown = if key.starts_with("guestinfo.") {
                    format!("<{} bytes>", value.len())
                } else {
                    value.clone()
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("VmSettings")
            .field("num_cpus", &self.num_cpus)
            .field("memory_mib", &self.memory_mib)
            .field("disk_gib", &self.disk_gib)
            .field("network", &self.network)
            .field("mac", &self.mac)
            .field("extra_config", &extra_config)
            .field("disk_uuid_enabled", &self.disk_uuid_enabled)
            .field("annotation", &self.annotation)
            .finish()
    }
}

/// A clone request: where the new VM goes and how it is set up.
#[derive(Debug, Clone)]
pub struct CloneRequest {
    /// New VM name (unique in the folder).
    pub name: String,
    /// Source VM or template.
    pub template: VmId,
    /// Target folder.
    pub folder: FolderId,
    /// Target resource pool.
    pub pool: ResourcePoolId,
    /// Target datastore (resolved from a datastore cluster by the caller).
    pub datastore: DatastoreId,
    /// Linked clone from this snapshot, or a full clone when `None`.
    pub linked_snapshot: Option<SnapshotId>,
    /// Settings to apply in the clone spec.
    pub settings: VmSettings,
    /// Power the clone on as part of the clone task (`powerOn` in the
    /// clone spec). Not done for a linked clone whose disk must grow first.
    pub power_on: bool,
}

/// What vkube sees of one VM.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedVm {
    /// Managed object id.
    pub id: String,
    /// Name.
    pub name: String,
    /// `poweredOn`, `poweredOff`, `suspended`.
    pub power_state: String,
    /// vCPUs.
    pub num_cpus: i32,
    /// Memory in MiB.
    pub memory_mib: i64,
    /// First disk size in KiB.
    pub disk_kib: i64,
    /// MAC of the first NIC.
    pub mac: Option<String>,
    /// Network of the first NIC.
    pub network: Option<String>,
    /// Guest-reported IP address.
    pub ip: Option<String>,
    /// `flags.diskUuidEnabled`.
    pub disk_uuid_enabled: bool,
    /// Whether it is a template.
    pub template: bool,
    /// extraConfig (all keys).
    pub extra_config: BTreeMap<String, String>,
}

const VM_PATHS: &[&str] = &[
    "name",
    "runtime.powerState",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.hardware.device",
    "config.extraConfig",
    "config.flags.diskUuidEnabled",
    "config.template",
    "guest.ipAddress",
];

fn option_string(value: &Option<VimAny>) -> String {
    match value {
        Some(VimAny::Value(ValueElements::PrimitiveString(s))) => s.clone(),
        Some(VimAny::Value(other)) => format!("{other:?}"),
        _ => String::new(),
    }
}

fn observed(mut props: ObjectProps) -> ObservedVm {
    let devices = props
        .take::<Vec<Box<dyn VirtualDeviceTrait>>>("config.hardware.device")
        .unwrap_or_default();
    observed_with_devices(props, &devices)
}

/// The observation of a VM whose devices were already taken out of `props`.
fn observed_with_devices(
    mut props: ObjectProps,
    devices: &[Box<dyn VirtualDeviceTrait>],
) -> ObservedVm {
    let (mac, network, disk_kib) = device_facts(devices);
    let extra_config = props
        .take::<Vec<Box<dyn OptionValueTrait>>>("config.extraConfig")
        .unwrap_or_default()
        .into_iter()
        .map(|o| {
            let o = o.get_option_value();
            (o.key.clone(), option_string(&o.value))
        })
        .collect();
    ObservedVm {
        id: props.obj.value.clone(),
        name: props.string("name").unwrap_or_default(),
        power_state: props
            .take::<VirtualMachinePowerStateEnum>("runtime.powerState")
            .map(|s| s.to_string())
            .unwrap_or_default(),
        num_cpus: props.take("config.hardware.numCPU").unwrap_or(0),
        memory_mib: props
            .take::<i32>("config.hardware.memoryMB")
            .map(i64::from)
            .unwrap_or(0),
        disk_kib,
        mac,
        network,
        ip: props.string("guest.ipAddress").filter(|s| !s.is_empty()),
        disk_uuid_enabled: props.take("config.flags.diskUuidEnabled").unwrap_or(false),
        template: props.take("config.template").unwrap_or(false),
        extra_config,
    }
}

/// Every VM directly in `folder`, in one round trip.
pub async fn observe_folder(
    session: &Session,
    folder: &ManagedObjectReference,
) -> Result<Vec<ObservedVm>> {
    // A cluster folder holds its VMs directly: one read of its children.
    let objects = retrieve_children(
        session,
        folder,
        &[Wanted {
            type_name: "VirtualMachine",
            paths: VM_PATHS,
        }],
    )
    .await?;
    Ok(objects
        .into_iter()
        .filter(|o| o.type_name() == "VirtualMachine")
        .map(observed)
        .collect())
}

/// One VM by reference (`None` if it is gone).
pub async fn observe_vm(
    session: &Session,
    vm: &ManagedObjectReference,
) -> Result<Option<ObservedVm>> {
    match retrieve_objects(
        session,
        std::slice::from_ref(vm),
        &[Wanted {
            type_name: "VirtualMachine",
            paths: VM_PATHS,
        }],
    )
    .await
    {
        Ok(objects) => Ok(objects.into_iter().next().map(observed)),
        Err(e) if e.is(&Fault::ManagedObjectNotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The folder `name` inside `parent`, created if missing. Safe to run
/// concurrently and again: `DuplicateName` means another run made it.
pub async fn ensure_folder(
    session: &Session,
    parent: &ManagedObjectReference,
    name: &str,
) -> Result<ManagedObjectReference> {
    if let Some(existing) = child_folder(session, parent, name).await? {
        return Ok(existing);
    }
    let folder = vim_rs::mo::Folder::new(session.client(), &parent.value);
    match folder.create_folder(name).await {
        Ok(created) => Ok(created),
        Err(e) => {
            let err = Error::from_client(&format!("creating folder `{name}`"), e);
            if err.is(&Fault::DuplicateName) {
                if let Some(existing) = child_folder(session, parent, name).await? {
                    return Ok(existing);
                }
            }
            Err(err)
        }
    }
}

/// The folder `name` directly inside `parent`, if any (two round trips).
pub async fn child_folder(
    session: &Session,
    parent: &ManagedObjectReference,
    name: &str,
) -> Result<Option<ManagedObjectReference>> {
    let mut props = retrieve_objects(
        session,
        std::slice::from_ref(parent),
        &[Wanted {
            type_name: "Folder",
            paths: &["childEntity"],
        }],
    )
    .await?;
    let children = props
        .first_mut()
        .map(|p| p.morefs("childEntity"))
        .unwrap_or_default();
    let folders: Vec<ManagedObjectReference> = children
        .into_iter()
        .filter(|c| c.r#type.as_str() == "Folder")
        .collect();
    let named = retrieve_objects(
        session,
        &folders,
        &[Wanted {
            type_name: "Folder",
            paths: &["name"],
        }],
    )
    .await?;
    Ok(named
        .into_iter()
        .find_map(|mut p| (p.string("name").as_deref() == Some(name)).then_some(p.obj)))
}

/// The current snapshot of a VM or template (for linked clones).
pub async fn current_snapshot(
    session: &Session,
    vm: &ManagedObjectReference,
) -> Result<Option<ManagedObjectReference>> {
    let mut props = retrieve_objects(
        session,
        std::slice::from_ref(vm),
        &[Wanted {
            type_name: "VirtualMachine",
            paths: &["snapshot.currentSnapshot"],
        }],
    )
    .await?;
    Ok(props
        .first_mut()
        .and_then(|p| p.take::<ManagedObjectReference>("snapshot.currentSnapshot")))
}

/// The config changes that bring `current` to `desired` (`None`: nothing to do).
fn config_spec(
    desired: &VmSettings,
    current: Option<&CurrentConfig>,
) -> Option<VirtualMachineConfigSpec> {
    let mut spec = VirtualMachineConfigSpec::default();
    let mut changed = false;
    if let Some(cpus) = desired.num_cpus {
        if current.is_none_or(|c| c.observed.num_cpus != cpus) {
            spec.num_cp_us = Some(cpus);
            changed = true;
        }
    }
    if let Some(mib) = desired.memory_mib {
        if current.is_none_or(|c| c.observed.memory_mib != mib) {
            spec.memory_mb = Some(mib);
            changed = true;
        }
    }
    let extra: Vec<Box<dyn OptionValueTrait>> = desired
        .extra_config
        .iter()
        .filter(|(k, v)| current.is_none_or(|c| c.observed.extra_config.get(*k) != Some(v)))
        .map(|(k, v)| {
            Box::new(OptionValue {
                key: k.clone(),
                value: Some(VimAny::Value(ValueElements::PrimitiveString(v.clone()))),
            }) as Box<dyn OptionValueTrait>
        })
        .collect();
    if !extra.is_empty() {
        spec.extra_config = Some(extra);
        changed = true;
    }
    if desired.disk_uuid_enabled && current.is_none_or(|c| !c.observed.disk_uuid_enabled) {
        spec.flags = Some(VirtualMachineFlagInfo {
            disk_uuid_enabled: Some(true),
            ..Default::default()
        });
        changed = true;
    }
    if let Some(note) = &desired.annotation {
        if current.is_none() {
            spec.annotation = Some(note.clone());
            changed = true;
        }
    }
    if let Some(current) = current {
        let mut devices = Vec::new();
        devices.extend(current.nic_change(desired).map(edit));
        devices.extend(current.disk_change(desired).map(edit));
        if !devices.is_empty() {
            spec.device_change = Some(devices);
            changed = true;
        }
    }
    changed.then_some(spec)
}

/// The spec of a clone: every setting, with the first NIC's network and
/// MAC, and for a full clone the first disk's size, edited from the
/// template's devices (`template`). A linked clone's disk is a child of
/// the template's snapshot: it grows after the clone.
fn clone_config_spec(
    desired: &VmSettings,
    template: &CurrentConfig,
    linked: bool,
) -> VirtualMachineConfigSpec {
    let mut spec = config_spec(desired, None).unwrap_or_default();
    let mut devices = Vec::new();
    devices.extend(template.nic_change(desired).map(edit));
    if !linked {
        devices.extend(template.disk_change(desired).map(edit));
    }
    if !devices.is_empty() {
        spec.device_change = Some(devices);
    }
    spec
}

fn edit(
    device: Box<dyn VirtualDeviceTrait>,
) -> Box<dyn vim_rs::types::traits::VirtualDeviceConfigSpecTrait> {
    Box::new(VirtualDeviceConfigSpec {
        operation: Some(VirtualDeviceConfigSpecOperationEnum::Edit),
        file_operation: None,
        device,
        profile: None,
        backing: None,
        filter_spec: None,
        change_mode: None,
    })
}

/// What a session just saw, to spare reads on a node's chain: templates'
/// configurations (read once per [`TEMPLATE_FRESH`]: a clone only needs
/// their device keys and backings), and the power state of VMs as the read
/// that reconfigured them saw it: a power-on right after needs no read
/// first (were one on after all, its power-on task fails as already on,
/// which counts as success; were one off after all, the next pass powers
/// it on).
#[derive(Default)]
pub(crate) struct Seen {
    templates: std::sync::Mutex<BTreeMap<String, (tokio::time::Instant, CachedConfig)>>,
    power: std::sync::Mutex<BTreeMap<String, (tokio::time::Instant, bool)>>,
}

/// How long a template's configuration is taken as read.
const TEMPLATE_FRESH: Duration = Duration::from_secs(60);
/// How long a VM's power state is taken as seen.
const POWER_FRESH: Duration = Duration::from_secs(5);

/// A configuration kept as read (devices serialised: they are not `Clone`).
#[derive(Clone)]
struct CachedConfig {
    observed: ObservedVm,
    devices: Vec<String>,
}

impl Seen {
    fn template(&self, id: &str) -> Option<CurrentConfig> {
        let templates = self.templates.lock().unwrap_or_else(|p| p.into_inner());
        let (at, cached) = templates.get(id)?;
        if at.elapsed() >= TEMPLATE_FRESH {
            return None;
        }
        let devices = cached
            .devices
            .iter()
            .map(|json| miniserde::json::from_str::<Box<dyn VirtualDeviceTrait>>(json).ok())
            .collect::<Option<Vec<_>>>()?;
        Some(CurrentConfig {
            observed: cached.observed.clone(),
            devices,
        })
    }

    fn keep_template(&self, id: &str, config: &CurrentConfig) {
        let devices = config
            .devices
            .iter()
            .map(|d| miniserde::json::to_string(&d as &dyn miniserde::Serialize))
            .collect();
        let cached = CachedConfig {
            observed: config.observed.clone(),
            devices,
        };
        self.templates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), (tokio::time::Instant::now(), cached));
    }

    fn saw_power_state(&self, id: &str, power_state: &str) {
        let on = power_state == "poweredOn";
        self.power
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), (tokio::time::Instant::now(), on));
    }

    /// Whether VM `id` was just seen on (`Some(true)`) or off, once: the
    /// state is forgotten when asked.
    fn just_seen_on(&self, id: &str) -> Option<bool> {
        self.power
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .filter(|(at, _)| at.elapsed() < POWER_FRESH)
            .map(|(_, on)| on)
    }
}

/// The parts of a VM's current configuration that edits start from.
struct CurrentConfig {
    observed: ObservedVm,
    devices: Vec<Box<dyn VirtualDeviceTrait>>,
}

impl CurrentConfig {
    async fn read(session: &Session, vm: &ManagedObjectReference) -> Result<Option<CurrentConfig>> {
        let objects = retrieve_objects(
            session,
            std::slice::from_ref(vm),
            &[Wanted {
                type_name: "VirtualMachine",
                paths: VM_PATHS,
            }],
        )
        .await?;
        let Some(mut props) = objects.into_iter().next() else {
            return Ok(None);
        };
        let devices = props
            .take::<Vec<Box<dyn VirtualDeviceTrait>>>("config.hardware.device")
            .unwrap_or_default();
        let observed = observed_with_devices(props, &devices);
        Ok(Some(CurrentConfig { observed, devices }))
    }

    /// The first NIC as `desired` wants it, when its network or MAC differs.
    fn nic_change(&self, desired: &VmSettings) -> Option<Box<dyn VirtualDeviceTrait>> {
        let network = desired
            .network
            .as_ref()
            .filter(|n| self.observed.network.as_deref() != Some(n.observed_key()));
        let mac = desired.mac.as_ref().filter(|mac| {
            self.observed.mac.as_deref().map(normalize_mac) != Some(normalize_mac(mac))
        });
        if network.is_none() && mac.is_none() {
            return None;
        }
        self.nic_with(network, mac.map(String::as_str))
    }

    /// The first disk grown to `desired`'s size, when it is smaller.
    fn disk_change(&self, desired: &VmSettings) -> Option<Box<dyn VirtualDeviceTrait>> {
        let want_kib = desired.disk_gib? * 1024 * 1024;
        (self.observed.disk_kib < want_kib)
            .then(|| self.disk_with(want_kib))
            .flatten()
    }

    /// A copy of the first NIC, its backing switched to `network` and its
    /// MAC set to `mac` (manual), where given.
    fn nic_with(
        &self,
        network: Option<&NetworkTarget>,
        mac: Option<&str>,
    ) -> Option<Box<dyn VirtualDeviceTrait>> {
        let source = self
            .devices
            .iter()
            .find(|d| CastInto::<dyn VirtualEthernetCardTrait>::into_ref(d.as_ref()).is_some())?;
        let mut card: Box<dyn VirtualEthernetCardTrait> =
            clone_device(source.as_ref())?.into_box().ok()?;
        if let Some(mac) = mac {
            let nic = card.get_virtual_ethernet_card_mut();
            nic.address_type = Some("manual".into());
            nic.mac_address = Some(normalize_mac(mac));
        }
        let Some(network) = network else {
            return Some(card);
        };
        let backing: Box<dyn vim_rs::types::traits::VirtualDeviceBackingInfoTrait> = match network {
            NetworkTarget::Standard { network, name } => {
                Box::new(VirtualEthernetCardNetworkBackingInfo {
                    virtual_device_device_backing_info_: VirtualDeviceDeviceBackingInfo {
                        device_name: name.clone(),
                        use_auto_detect: Some(false),
                    },
                    network: Some(network.moref()),
                    in_passthrough_mode: None,
                })
            }
            NetworkTarget::Distributed {
                key, switch_uuid, ..
            } => Box::new(VirtualEthernetCardDistributedVirtualPortBackingInfo {
                port: DistributedVirtualSwitchPortConnection {
                    switch_uuid: switch_uuid.clone(),
                    portgroup_key: Some(key.clone()),
                    ..Default::default()
                },
            }),
        };
        card.get_virtual_ethernet_card_mut().virtual_device_.backing = Some(backing);
        Some(card)
    }

    /// A copy of the first disk grown to `kib`.
    fn disk_with(&self, kib: i64) -> Option<Box<dyn VirtualDeviceTrait>> {
        let source = self
            .devices
            .iter()
            .find(|d| d.as_any_ref().is::<VirtualDisk>())?;
        let copy = clone_device(source.as_ref())?;
        let mut disk = copy.as_any_box().downcast::<VirtualDisk>().ok()?;
        disk.capacity_in_kb = kib;
        disk.capacity_in_bytes = Some(kib * 1024);
        Some(disk)
    }
}

/// Generated device types are not `Clone`; a serialize/parse round trip copies one.
fn clone_device(device: &dyn VirtualDeviceTrait) -> Option<Box<dyn VirtualDeviceTrait>> {
    let json = miniserde::json::to_string(&device as &dyn miniserde::Serialize);
    miniserde::json::from_str::<Box<dyn VirtualDeviceTrait>>(&json).ok()
}

fn device_facts(devices: &[Box<dyn VirtualDeviceTrait>]) -> (Option<String>, Option<String>, i64) {
    let mut mac = None;
    let mut network = None;
    let mut disk_kib = 0;
    for device in devices {
        if let Some(disk) = device.as_any_ref().downcast_ref::<VirtualDisk>() {
            if disk_kib == 0 {
                disk_kib = disk.capacity_in_kb;
            }
        } else if let Some(card) =
            CastInto::<dyn VirtualEthernetCardTrait>::into_ref(device.as_ref())
        {
            if mac.is_none() {
                let card = card.get_virtual_ethernet_card();
                mac = card.mac_address.clone();
                network = card.virtual_device_.backing.as_ref().and_then(|b| {
                    b.as_any_ref()
                        .downcast_ref::<VirtualEthernetCardNetworkBackingInfo>()
                        .and_then(|n| n.network.as_ref().map(|r| r.value.clone()))
                        .or_else(|| {
                            b.as_any_ref()
                                .downcast_ref::<VirtualEthernetCardDistributedVirtualPortBackingInfo>()
                                .and_then(|d| d.port.portgroup_key.clone())
                        })
                });
            }
        }
    }
    (mac, network, disk_kib)
}

/// Clone a VM. Returns the new VM. A clone whose name already exists in the
/// folder is an error (`DuplicateName`): callers look for their marked VM first.
pub async fn clone_vm(session: &Session, request: &CloneRequest) -> Result<ManagedObjectReference> {
    let operation = format!("cloning `{}`", request.name);
    let template = match session.seen.template(request.template.id()) {
        Some(config) => config,
        None => {
            let config = CurrentConfig::read(session, &request.template.moref())
                .await?
                .ok_or_else(|| not_found("template", request.template.id()))?;
            session.seen.keep_template(request.template.id(), &config);
            config
        }
    };
    let folder = request.folder.moref();
    let linked = request.linked_snapshot.is_some();
    let spec = VirtualMachineCloneSpec {
        location: VirtualMachineRelocateSpec {
            folder: Some(folder.clone()),
            datastore: Some(request.datastore.moref()),
            pool: Some(request.pool.moref()),
            disk_move_type: request
                .linked_snapshot
                .as_ref()
                .map(|_| "createNewChildDiskBacking".to_string()),
            ..Default::default()
        },
        template: false,
        config: Some(clone_config_spec(&request.settings, &template, linked)),
        // A disk still to grow is grown before the guest first boots.
        power_on: request.power_on
            && !(linked && template.disk_change(&request.settings).is_some()),
        snapshot: request.linked_snapshot.as_ref().map(SnapshotId::moref),
        ..Default::default()
    };
    let source = vim_rs::mo::VirtualMachine::new(session.client(), request.template.id());
    let task = source
        .clone_vm_task(&folder, &request.name, &spec)
        .await
        .map_err(|e| Error::from_client(&operation, e))?;
    session
        .wait_task(&operation, task)
        .await?
        .ok_or_else(|| Error::Protocol {
            operation: operation.clone(),
            detail: "the clone task returned no VM".into(),
        })
}

/// The MAC of every NIC of every VM and template in vCenter, with the VM
/// holding it: what a MAC chosen by vkube must not collide with. One
/// container view over the root folder (three round trips; its answer grows
/// with the inventory, so callers read it once per apply, and only when
/// they create VMs).
pub async fn macs_in_use(session: &Session) -> Result<BTreeMap<String, String>> {
    let root = session.content().root_folder.clone();
    let objects = retrieve_container(
        session,
        &root,
        &[Wanted {
            type_name: "VirtualMachine",
            paths: &["config.hardware.device"],
        }],
    )
    .await?;
    let mut macs = BTreeMap::new();
    for mut props in objects {
        let devices = props
            .take::<Vec<Box<dyn VirtualDeviceTrait>>>("config.hardware.device")
            .unwrap_or_default();
        for device in &devices {
            if let Some(card) = CastInto::<dyn VirtualEthernetCardTrait>::into_ref(device.as_ref())
            {
                if let Some(mac) = &card.get_virtual_ethernet_card().mac_address {
                    macs.insert(normalize_mac(mac), props.obj.value.clone());
                }
            }
        }
    }
    Ok(macs)
}

fn normalize_mac(mac: &str) -> String {
    vkube_core::cluster::mac::normalize_mac(mac)
}

/// Bring a VM's CPU, memory, disk, NIC, extraConfig and flags to `desired`,
/// changing only what differs (a no-op when it already matches). Returns
/// whether anything was changed.
pub async fn ensure_settings(
    session: &Session,
    vm: &ManagedObjectReference,
    desired: &VmSettings,
) -> Result<bool> {
    let current = CurrentConfig::read(session, vm)
        .await?
        .ok_or_else(|| not_found("VM", &vm.value))?;
    session
        .seen
        .saw_power_state(&vm.value, &current.observed.power_state);
    let Some(spec) = config_spec(desired, Some(&current)) else {
        return Ok(false);
    };
    let operation = format!("reconfiguring `{}`", current.observed.name);
    let task = vim_rs::mo::VirtualMachine::new(session.client(), &vm.value)
        .reconfig_vm_task(&spec)
        .await
        .map_err(|e| Error::from_client(&operation, e))?;
    session.wait_task(&operation, task).await?;
    Ok(true)
}

/// Power a VM on; already on is success. The power state is read first (a
/// cheap read): a clone powered on by its clone spec needs no task.
pub async fn power_on(session: &Session, vm: &ManagedObjectReference) -> Result<()> {
    let operation = format!("powering on `{}`", vm.value);
    match session.seen.just_seen_on(&vm.value) {
        Some(true) => return Ok(()),
        Some(false) => return power_on_task(session, vm, &operation).await,
        None => {}
    }
    let mut state = retrieve_objects(
        session,
        std::slice::from_ref(vm),
        &[Wanted {
            type_name: "VirtualMachine",
            paths: &["runtime.powerState"],
        }],
    )
    .await?;
    let on = state
        .first_mut()
        .and_then(|p| p.take::<VirtualMachinePowerStateEnum>("runtime.powerState"))
        == Some(VirtualMachinePowerStateEnum::PoweredOn);
    if on {
        return Ok(());
    }
    power_on_task(session, vm, &operation).await
}

/// `PowerOnVM_Task`, waited for; already on is success.
async fn power_on_task(
    session: &Session,
    vm: &ManagedObjectReference,
    operation: &str,
) -> Result<()> {
    let machine = vim_rs::mo::VirtualMachine::new(session.client(), &vm.value);
    let task = machine
        .power_on_vm_task(None)
        .await
        .map_err(|e| Error::from_client(operation, e))?;
    match session.wait_task(operation, task).await.map(|_| ()) {
        Err(e) if e.is(&Fault::InvalidPowerState) => Ok(()),
        other => other,
    }
}

/// Power a VM off: a guest shutdown first, a hard power-off after `grace`.
/// Already off (or gone) is success.
pub async fn power_off(
    session: &Session,
    vm: &ManagedObjectReference,
    grace: Duration,
) -> Result<()> {
    let Some(state) = observe_vm(session, vm).await? else {
        return Ok(());
    };
    if state.power_state != "poweredOn" {
        return Ok(());
    }
    if shutdown_guest(session, vm).await.is_ok() && !grace.is_zero() {
        let deadline = tokio::time::Instant::now() + grace;
        // Guests take seconds to shut down; check at a calm pace.
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500).min(grace)).await;
            match observe_vm(session, vm).await? {
                None => return Ok(()),
                Some(s) if s.power_state != "poweredOn" => return Ok(()),
                Some(_) => {}
            }
        }
    }
    power_off_now(session, vm).await
}

/// Ask the guest to shut down (VMware Tools); returns once asked, not
/// once off. Fails when the guest cannot be asked (no Tools, not running).
pub async fn shutdown_guest(session: &Session, vm: &ManagedObjectReference) -> Result<()> {
    vim_rs::mo::VirtualMachine::new(session.client(), &vm.value)
        .shutdown_guest()
        .await
        .map_err(|e| Error::from_client(&format!("shutting down the guest of `{}`", vm.value), e))
}

/// Power a VM off at once (no guest shutdown). Already off is success.
pub async fn power_off_now(session: &Session, vm: &ManagedObjectReference) -> Result<()> {
    let operation = format!("powering off `{}`", vm.value);
    let task = vim_rs::mo::VirtualMachine::new(session.client(), &vm.value)
        .power_off_vm_task()
        .await
        .map_err(|e| Error::from_client(&operation, e))?;
    match session.wait_task(&operation, task).await.map(|_| ()) {
        Err(e) if e.is(&Fault::InvalidPowerState) => Ok(()),
        other => other,
    }
}

/// Destroy a VM or folder; already gone is success.
pub async fn destroy(session: &Session, entity: &ManagedObjectReference) -> Result<()> {
    let operation = format!("destroying `{}`", entity.value);
    let task = match entity.r#type.as_str() {
        "Folder" => {
            vim_rs::mo::Folder::new(session.client(), &entity.value)
                .destroy_task()
                .await
        }
        _ => {
            vim_rs::mo::VirtualMachine::new(session.client(), &entity.value)
                .destroy_task()
                .await
        }
    };
    let result = match task {
        Ok(task) => session.wait_task(&operation, task).await.map(|_| ()),
        Err(e) => Err(Error::from_client(&operation, e)),
    };
    match result {
        Err(e) if e.is(&Fault::ManagedObjectNotFound) => Ok(()),
        other => other,
    }
}

/// Ask Storage DRS where a clone of `template` should go inside datastore
/// cluster `pod`. The simulator cannot apply recommendations, so vkube
/// takes the recommended datastore and names it in its own relocate spec.
pub async fn recommend_datastore(
    session: &Session,
    pod: &ManagedObjectReference,
    template: &ManagedObjectReference,
    folder: &ManagedObjectReference,
    pool: &ManagedObjectReference,
    name: &str,
) -> Result<ManagedObjectReference> {
    let operation = format!("asking Storage DRS where to place `{name}`");
    let manager_ref = session
        .content()
        .storage_resource_manager
        .clone()
        .ok_or_else(|| Error::Protocol {
            operation: operation.clone(),
            detail: "no StorageResourceManager".into(),
        })?;
    let spec = StoragePlacementSpec {
        r#type: "clone".into(),
        priority: Some(VirtualMachineMovePriorityEnum::DefaultPriority),
        vm: Some(template.clone()),
        pod_selection_spec: StorageDrsPodSelectionSpec {
            initial_vm_config: Some(vec![VmPodConfigForPlacement {
                storage_pod: pod.clone(),
                disk: None::<Vec<PodDiskLocator>>,
                vm_config: None,
                inter_vm_rule: None,
            }]),
            storage_pod: Some(pod.clone()),
        },
        clone_spec: Some(VirtualMachineCloneSpec {
            location: VirtualMachineRelocateSpec {
                pool: Some(pool.clone()),
                ..Default::default()
            },
            ..Default::default()
        }),
        clone_name: Some(name.to_string()),
        folder: Some(folder.clone()),
        resource_pool: Some(pool.clone()),
        ..Default::default()
    };
    let manager = vim_rs::mo::StorageResourceManager::new(session.client(), &manager_ref.value);
    let result = manager
        .recommend_datastores(&spec)
        .await
        .map_err(|e| Error::from_client(&operation, e))?;
    result
        .recommendations
        .iter()
        .flatten()
        .flat_map(|r| r.action.iter().flatten())
        .find_map(|action| {
            action
                .as_any_ref()
                .downcast_ref::<vim_rs::types::structs::StoragePlacementAction>()
                .map(|a| a.destination.clone())
        })
        .ok_or_else(|| {
            Error::raised(
                &operation,
                Fault::NoRecommendation,
                Some(format!(
                    "Storage DRS recommended no datastore in `{}`",
                    pod.value
                )),
            )
        })
}

impl VmSettings {
    /// The network this setting targets, if any.
    pub fn network_id(&self) -> Option<&NetworkId> {
        self.network.as_ref().map(NetworkTarget::network)
    }
}

/// The IP address the guest reports now, if any (one round trip).
pub async fn guest_ip(session: &Session, vm: &ManagedObjectReference) -> Result<Option<String>> {
    let mut props = retrieve_objects(
        session,
        std::slice::from_ref(vm),
        &[Wanted {
            type_name: "VirtualMachine",
            paths: &["guest.ipAddress"],
        }],
    )
    .await?;
    Ok(props
        .first_mut()
        .and_then(|p| p.string("guest.ipAddress"))
        .filter(|ip| !ip.is_empty()))
}

/// Wait until the guest reports an IP address (DHCP), checking at a calm
/// pace (0.5 s growing to 5 s). `None` when `timeout` passes first.
pub async fn wait_for_ip(
    session: &Session,
    vm: &ManagedObjectReference,
    timeout: Duration,
) -> Result<Option<String>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut interval = Duration::from_millis(500);
    loop {
        if let Some(ip) = guest_ip(session, vm).await? {
            return Ok(Some(ip));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_power_state_just_seen_is_used_once() {
        let seen = Seen::default();
        assert_eq!(seen.just_seen_on("vm-1"), None);
        seen.saw_power_state("vm-1", "poweredOff");
        seen.saw_power_state("vm-2", "poweredOn");
        assert_eq!(seen.just_seen_on("vm-1"), Some(false));
        assert_eq!(seen.just_seen_on("vm-1"), None, "once");
        assert_eq!(seen.just_seen_on("vm-2"), Some(true));
    }

    #[test]
    fn settings_debug_hides_bootstrap_data() {
        let settings = VmSettings {
            extra_config: BTreeMap::from([
                (
                    "guestinfo.userdata".to_string(),
                    "token: abcdef.0123456789abcdef".to_string(),
                ),
                ("vkube.node".to_string(), "c1-cp-0".to_string()),
            ]),
            ..Default::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(
            shown.contains("c1-cp-0") && shown.contains("guestinfo.userdata"),
            "{shown}"
        );
    }
}
