//! An in-memory vCenter behind the vSphere port, for the runtime's unit
//! tests: a fixed inventory (one datacenter, compute cluster, resource
//! pool, datastore, network and template), folders and VMs with power
//! state, MACs and extraConfig, privileges, and deterministic ids. It
//! behaves like vCenter where vkube relies on it: a clone of a name taken
//! in the folder fails with `DuplicateName`, a powered-on VM cannot be
//! destroyed, gone objects count as done, and a clone applies its whole
//! spec (settings, MAC, disk, power-on; a linked clone's disk grows after
//! it, off). [`FakeVsphere::clone_like_the_simulator`] makes clones ignore
//! CPU, memory, flags, MAC and power-on instead, as govmomi's simulator
//! ignores all but the MAC (which vkube must then fix all the same).
//!
//! Faults are injected at the N-th mutating call ([`Injection`]): fail it
//! with a fault, or "crash" (the call never returns, before or after its
//! effect) so the test drops the run as a killed process would stop.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use vkube_core::images::{ImageOs, ImageRecord, NicKind, TemplateFacts};
use vkube_core::topology::{
    Attachment, CategoryFacts, Observed, Step as ZoneStep, TagFact, TagFacts,
};
use vkube_vsphere::vm::{CloneRequest, NetworkTarget, ObservedVm, VmSettings};
use vkube_vsphere::{
    DatastoreId, Details, Error, Fault, FolderId, Inventory, NetworkId, ObjectRef, PermissionInfo,
    PlacementQuery, Result, RoleInfo, SessionFacts, SnapshotId, Trust, VmId, VspherePort,
};

use crate::context::{Clock, LockHolder, Random};

/// Paths of the fixed inventory.
pub const DATACENTER: &str = "DC0";
pub const TEMPLATE: &str = "/DC0/vm/ubuntu-template";
pub const COMPUTE_CLUSTER: &str = "/DC0/host/C0";
pub const RESOURCE_POOL: &str = "/DC0/host/C0/Resources";
pub const DATASTORE: &str = "/DC0/datastore/DS0";
pub const NETWORK: &str = "/DC0/network/VM Network";

const ROOT: &str = "group-d1";
const VM_FOLDER: &str = "group-v3";
const TEMPLATE_ID: &str = "vm-100";

/// The instance UUID the fake vCenter reports unless told otherwise.
pub const FAKE_VCENTER_UUID: &str = "11111111-2222-3333-4444-555555555555";

/// What happens at the injected call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injection {
    /// The call fails with this fault and changes nothing.
    Fail(Fault),
    /// The call never returns and changes nothing.
    CrashBefore,
    /// The call makes its change, then never returns.
    CrashAfter,
    /// vCenter stops answering: this and every later mutating call fail
    /// with [`Error::NoAnswer`] after the request deadline, changing nothing.
    Silent,
}

#[derive(Debug, Clone)]
struct FakeVm {
    name: String,
    folder: String,
    power_state: String,
    num_cpus: i32,
    memory_mib: i64,
    disk_kib: i64,
    mac: String,
    network: Option<String>,
    extra_config: BTreeMap<String, String>,
    disk_uuid_enabled: bool,
    annotation: Option<String>,
    ip: Option<String>,
    template: bool,
}

#[derive(Debug, Default)]
struct State {
    /// Extra folders, by id: (name, parent id).
    folders: BTreeMap<String, (String, String)>,
    vms: BTreeMap<String, FakeVm>,
    next_id: u64,
    /// Mutating calls so far.
    mutations: usize,
    /// Mutating calls that changed something.
    changes: Vec<String>,
    injection: Option<(usize, Injection)>,
    crashed: bool,
    round_trips: u64,
    /// Privileges every user holds on every object.
    privileges: BTreeSet<String>,
    /// Clones of these names race a clone of another run: the VM appears
    /// just before vkube's own clone, which then fails with `DuplicateName`.
    racing_clones: BTreeSet<String>,
    /// Guests that ignore a shutdown request.
    stubborn_guests: bool,
    /// Roles by id, the system roles first.
    roles: BTreeMap<i32, RoleInfo>,
    /// Permissions, in the order they were set.
    permissions: Vec<PermissionInfo>,
    /// The region and zone categories, their tags and attachments.
    tags: TagFacts,
    /// The instance UUID the "vCenter" reports.
    instance_uuid: Option<String>,
    /// Racing clones carry these markers (another state's VM).
    racing_markers: BTreeMap<String, String>,
    /// Clones ignore CPU, memory, flags, MAC and power-on (the simulator).
    clones_like_the_simulator: bool,
}

/// The fake vCenter.
pub struct FakeVsphere {
    state: Mutex<State>,
    crash: tokio::sync::Notify,
}

/// What a mutating call may do, once the injection has been consulted.
enum Go {
    Proceed { crash_after: bool },
    Fail(Error),
    Hang,
}

impl FakeVsphere {
    /// The fixed inventory with a template, and every user holding `privileges`.
    pub fn new(privileges: impl IntoIterator<Item = String>) -> FakeVsphere {
        let template = FakeVm {
            name: "ubuntu-template".into(),
            folder: VM_FOLDER.into(),
            power_state: "poweredOff".into(),
            num_cpus: 2,
            memory_mib: 2048,
            disk_kib: 20 * 1024 * 1024,
            mac: "00:50:56:00:00:00".into(),
            network: Some("network-10".into()),
            extra_config: BTreeMap::new(),
            disk_uuid_enabled: false,
            annotation: None,
            ip: None,
            template: true,
        };
        FakeVsphere {
            state: Mutex::new(State {
                vms: BTreeMap::from([(TEMPLATE_ID.to_string(), template)]),
                next_id: 200,
                privileges: privileges.into_iter().collect(),
                roles: system_roles(),
                instance_uuid: Some(FAKE_VCENTER_UUID.into()),
                ..Default::default()
            }),
            crash: tokio::sync::Notify::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inject `what` at the `n`-th mutating call from now on (1-based).
    pub fn inject(&self, n: usize, what: Injection) {
        let mut state = self.state();
        let at = state.mutations + n;
        state.injection = Some((at, what));
    }

    /// Stop injecting, and let calls return again after a crash.
    pub fn heal(&self) {
        let mut state = self.state();
        state.injection = None;
        state.crashed = false;
    }

    /// Resolves once a call has crashed.
    pub async fn crashed(&self) {
        self.crash.notified().await;
    }

    /// Mutating calls made so far.
    pub fn mutations(&self) -> usize {
        self.state().mutations
    }

    /// Calls that changed something, as `call target` lines.
    pub fn changes(&self) -> Vec<String> {
        self.state().changes.clone()
    }

    /// A clone of `name` will find the name taken by a VM another run cloned.
    pub fn race_clone(&self, name: &str) {
        self.state().racing_clones.insert(name.to_owned());
    }

    /// Like [`race_clone`](Self::race_clone), by another state's run: the
    /// racing VM carries `markers` instead of the clone's own.
    pub fn race_clone_with(&self, name: &str, markers: BTreeMap<String, String>) {
        let mut state = self.state();
        state.racing_clones.insert(name.to_owned());
        state.racing_markers = markers;
    }

    /// From now on the "vCenter" reports instance UUID `uuid` (a rebuilt
    /// vCenter, or another one at the same address).
    pub fn set_instance_uuid(&self, uuid: Option<&str>) {
        self.state().instance_uuid = uuid.map(str::to_owned);
    }

    /// Gives VM `name` (the template is `ubuntu-template`) the NIC MAC
    /// `mac`, as an administrator assigning one by hand would.
    pub fn set_mac(&self, name: &str, mac: &str) {
        let mut state = self.state();
        for vm in state.vms.values_mut().filter(|vm| vm.name == name) {
            vm.mac = mac.to_owned();
        }
    }

    /// Sets extraConfig `key` of VM `name` (`None` removes it), as a
    /// vCenter user editing the VM would.
    pub fn set_extra_config(&self, name: &str, key: &str, value: Option<&str>) {
        let mut state = self.state();
        for vm in state.vms.values_mut().filter(|vm| vm.name == name) {
            match value {
                Some(value) => vm.extra_config.insert(key.to_owned(), value.to_owned()),
                None => vm.extra_config.remove(key),
            };
        }
    }

    /// The guest of VM `name` reports `ip`.
    pub fn set_guest_ip(&self, name: &str, ip: &str) {
        let mut state = self.state();
        for vm in state.vms.values_mut().filter(|vm| vm.name == name) {
            vm.ip = Some(ip.to_owned());
        }
    }

    /// Destroy VM `name` behind vkube's back (someone in vCenter did).
    pub fn remove_vm(&self, name: &str) {
        self.state().vms.retain(|_, vm| vm.name != name);
    }

    /// From now on clones keep the template's CPU, memory, flags and MAC
    /// and stay off, whatever the clone spec says (govmomi's simulator).
    pub fn clone_like_the_simulator(&self) {
        self.state().clones_like_the_simulator = true;
    }

    /// Guests ignore shutdown requests from now on.
    pub fn make_guests_stubborn(&self) {
        self.state().stubborn_guests = true;
    }

    /// Every VM below the VM folder, not the template, by name (a name
    /// twice shows as `name#2`).
    pub fn vms(&self) -> BTreeMap<String, ObservedVm> {
        let state = self.state();
        let mut out = BTreeMap::new();
        for (id, vm) in state.vms.iter().filter(|(_, vm)| !vm.template) {
            let mut key = vm.name.clone();
            let mut n = 1;
            while out.contains_key(&key) {
                n += 1;
                key = format!("{}#{n}", vm.name);
            }
            out.insert(key, observed(id, vm));
        }
        out
    }

    /// Names of the folders vkube created.
    pub fn folders(&self) -> Vec<String> {
        self.state()
            .folders
            .values()
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Decide what the next mutating call does.
    fn begin(&self, call: &str) -> Go {
        let mut state = self.state();
        if state.crashed {
            return Go::Hang;
        }
        state.round_trips += 1;
        state.mutations += 1;
        let now = state.mutations;
        let silent = |call: &str| {
            Go::Fail(Error::NoAnswer {
                operation: call.to_owned(),
                host: "vcenter.example.test:443".into(),
                call: format!("`{call}`"),
                waited: Duration::from_secs(30),
            })
        };
        if matches!(&state.injection, Some((at, Injection::Silent)) if *at <= now) {
            return silent(call);
        }
        match &state.injection {
            Some((at, what)) if *at == now => match what.clone() {
                Injection::Fail(fault) => Go::Fail(Error::raised(
                    &format!("{call} (injected)"),
                    fault,
                    Some(format!("fault injected at mutating call {now}")),
                )),
                Injection::CrashBefore => {
                    state.crashed = true;
                    Go::Hang
                }
                Injection::CrashAfter => Go::Proceed { crash_after: true },
                Injection::Silent => unreachable!("handled above"),
            },
            _ => Go::Proceed { crash_after: false },
        }
    }

    /// Finish a mutating call: record a change, crash if asked.
    async fn end<T>(&self, crash_after: bool, change: Option<String>, value: T) -> Result<T> {
        {
            let mut state = self.state();
            if let Some(change) = change {
                state.changes.push(change);
            }
            if crash_after {
                state.crashed = true;
            }
        }
        if crash_after {
            self.hang().await;
        }
        Ok(value)
    }

    async fn hang(&self) {
        self.crash.notify_one();
        std::future::pending::<()>().await;
    }

    fn count_read(&self) {
        self.state().round_trips += 1;
    }

    fn read(&self) -> MutexGuard<'_, State> {
        let mut state = self.state();
        state.round_trips += 1;
        state
    }

    /// Run a mutating call: consult the injection, apply `change` (which
    /// returns the value and a description when something changed).
    async fn mutate<T>(
        &self,
        call: &str,
        change: impl FnOnce(&mut State) -> Result<(T, Option<String>)>,
    ) -> Result<T> {
        let crash_after = match self.begin(call) {
            Go::Proceed { crash_after } => crash_after,
            Go::Fail(e) => return Err(e),
            Go::Hang => {
                self.hang().await;
                unreachable!("a crashed call never returns")
            }
        };
        let outcome = {
            let mut state = self.state();
            change(&mut state)
        };
        let (value, description) = outcome?;
        self.end(crash_after, description, value).await
    }
}

fn observed(id: &str, vm: &FakeVm) -> ObservedVm {
    ObservedVm {
        id: id.to_owned(),
        name: vm.name.clone(),
        power_state: vm.power_state.clone(),
        num_cpus: vm.num_cpus,
        memory_mib: vm.memory_mib,
        disk_kib: vm.disk_kib,
        mac: Some(vm.mac.clone()),
        network: vm.network.clone(),
        ip: vm.ip.clone(),
        disk_uuid_enabled: vm.disk_uuid_enabled,
        template: vm.template,
        extra_config: vm.extra_config.clone(),
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

impl State {
    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    /// `folder` and every folder below it.
    fn subtree(&self, folder: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::from([folder.to_owned()]);
        loop {
            let more: Vec<String> = self
                .folders
                .iter()
                .filter(|(id, (_, parent))| out.contains(parent) && !out.contains(*id))
                .map(|(id, _)| id.clone())
                .collect();
            if more.is_empty() {
                return out;
            }
            out.extend(more);
        }
    }

    fn folder_exists(&self, id: &str) -> bool {
        id == VM_FOLDER || self.folders.contains_key(id)
    }

    /// Apply `settings` to VM `id`; returns whether anything changed.
    fn configure(&mut self, id: &str, settings: &VmSettings, initial: bool) -> Result<bool> {
        let vm = self.vms.get_mut(id).ok_or_else(|| not_found("VM", id))?;
        let before = vm.clone();
        if let Some(cpus) = settings.num_cpus {
            vm.num_cpus = cpus;
        }
        if let Some(mib) = settings.memory_mib {
            vm.memory_mib = mib;
        }
        if let Some(gib) = settings.disk_gib {
            vm.disk_kib = vm.disk_kib.max(gib * 1024 * 1024);
        }
        if let Some(network) = &settings.network {
            vm.network = Some(network.observed_key().to_owned());
        }
        if let Some(mac) = &settings.mac {
            vm.mac = vkube_core::cluster::mac::normalize_mac(mac);
        }
        for (key, value) in &settings.extra_config {
            vm.extra_config.insert(key.clone(), value.clone());
        }
        vm.disk_uuid_enabled |= settings.disk_uuid_enabled;
        if initial {
            vm.annotation = settings.annotation.clone();
        }
        let changed = vm.num_cpus != before.num_cpus
            || vm.memory_mib != before.memory_mib
            || vm.disk_kib != before.disk_kib
            || vm.network != before.network
            || vm.mac != before.mac
            || vm.extra_config != before.extra_config
            || vm.disk_uuid_enabled != before.disk_uuid_enabled
            || vm.annotation != before.annotation;
        Ok(changed)
    }

    fn clone_from(&mut self, request: &CloneRequest) -> Result<String> {
        let template = self
            .vms
            .get(request.template.id())
            .cloned()
            .ok_or_else(|| not_found("VM", request.template.id()))?;
        if !self.folder_exists(request.folder.id()) {
            return Err(not_found("folder", request.folder.id()));
        }
        let id = self.fresh_id("vm");
        let n = self.next_id;
        self.vms.insert(
            id.clone(),
            FakeVm {
                name: request.name.clone(),
                folder: request.folder.id().to_owned(),
                power_state: "poweredOff".into(),
                mac: format!(
                    "00:50:56:{:02x}:{:02x}:{:02x}",
                    n >> 16 & 0xff,
                    n >> 8 & 0xff,
                    n & 0xff
                ),
                extra_config: BTreeMap::new(),
                annotation: None,
                template: false,
                ip: None,
                ..template
            },
        );
        // A linked clone's disk grows after the clone (the port does not
        // grow it in the clone spec), and the clone stays off until then.
        let linked = request.linked_snapshot.is_some();
        let mut applied = request.settings.clone();
        if linked {
            applied.disk_gib = None;
        }
        if self.clones_like_the_simulator {
            applied.num_cpus = None;
            applied.memory_mib = None;
            applied.disk_uuid_enabled = false;
            applied.mac = None;
        }
        self.configure(&id, &applied, true)?;
        let grows = request
            .settings
            .disk_gib
            .is_some_and(|gib| template.disk_kib < gib * 1024 * 1024);
        if request.power_on && !(linked && grows) && !self.clones_like_the_simulator {
            self.vms.get_mut(&id).expect("cloned").power_state = "poweredOn".into();
        }
        Ok(id)
    }
}

#[async_trait(?Send)]
impl VspherePort for FakeVsphere {
    fn facts(&self) -> SessionFacts {
        SessionFacts {
            host: "vcenter.example.test".into(),
            port: 443,
            trust: Trust::Thumbprint("AB:CD:EF".into()),
            instance_uuid: self.state().instance_uuid.clone(),
        }
    }

    fn round_trips(&self) -> u64 {
        self.state().round_trips
    }

    async fn inventory(&self) -> Result<Inventory> {
        let state = self.read();
        let folder = |types: &[&str]| Details::Folder {
            child_types: types.iter().map(|t| t.to_string()).collect(),
        };
        let entry = |type_name: &str, id: &str, name: &str, parent: Option<&str>, details| {
            (
                ObjectRef::new(type_name, id),
                name.to_owned(),
                parent.map(str::to_owned),
                details,
            )
        };
        let mut entities = vec![
            entry("Folder", ROOT, "", None, folder(&["Datacenter", "Folder"])),
            entry(
                "Datacenter",
                "datacenter-2",
                DATACENTER,
                Some(ROOT),
                Details::Datacenter,
            ),
            entry(
                "Folder",
                VM_FOLDER,
                "vm",
                Some("datacenter-2"),
                folder(&["VirtualMachine", "Folder"]),
            ),
            entry(
                "Folder",
                "group-h4",
                "host",
                Some("datacenter-2"),
                folder(&["ComputeResource", "Folder"]),
            ),
            entry(
                "Folder",
                "group-s5",
                "datastore",
                Some("datacenter-2"),
                folder(&["Datastore", "StoragePod", "Folder"]),
            ),
            entry(
                "Folder",
                "group-n6",
                "network",
                Some("datacenter-2"),
                folder(&["Network", "Folder"]),
            ),
            entry(
                "ClusterComputeResource",
                "domain-c7",
                "C0",
                Some("group-h4"),
                Details::ComputeCluster {
                    hosts: vec!["host-8".into()],
                },
            ),
            entry(
                "HostSystem",
                "host-8",
                "esx-0",
                Some("domain-c7"),
                Details::Host {
                    connection_state: "connected".into(),
                    power_state: "poweredOn".into(),
                    datastores: vec!["datastore-9".into()],
                    networks: vec!["network-10".into()],
                },
            ),
            entry(
                "ResourcePool",
                "resgroup-11",
                "Resources",
                Some("domain-c7"),
                Details::ResourcePool {
                    owner: Some("domain-c7".into()),
                },
            ),
            entry(
                "Datastore",
                "datastore-9",
                "DS0",
                Some("group-s5"),
                Details::Datastore {
                    datastore_type: "VMFS".into(),
                    capacity_bytes: 1 << 40,
                    free_bytes: 1 << 39,
                    accessible: true,
                    url: "ds:///vmfs/volumes/ds0/".into(),
                    hosts: vec!["host-8".into()],
                },
            ),
            entry(
                "Network",
                "network-10",
                "VM Network",
                Some("group-n6"),
                Details::Network {
                    network_type: "Network".into(),
                    hosts: vec!["host-8".into()],
                },
            ),
        ];
        for (id, (name, parent)) in &state.folders {
            entities.push(entry(
                "Folder",
                id,
                name,
                Some(parent),
                folder(&["VirtualMachine", "Folder"]),
            ));
        }
        for (id, vm) in &state.vms {
            entities.push(entry(
                "VirtualMachine",
                id,
                &vm.name,
                Some(&vm.folder),
                Details::VirtualMachine {
                    template: vm.template,
                    power_state: vm.power_state.clone(),
                    resource_pool: (!vm.template).then(|| "resgroup-11".to_owned()),
                    host: None,
                },
            ));
        }
        Ok(Inventory::from_parts(entities, ROOT))
    }

    async fn network_target(&self, network: &NetworkId) -> Result<NetworkTarget> {
        self.count_read();
        Ok(NetworkTarget::Standard {
            network: network.clone(),
            name: "VM Network".into(),
        })
    }

    async fn current_snapshot(&self, _vm: &VmId) -> Result<Option<SnapshotId>> {
        self.count_read();
        Ok(None)
    }

    async fn find_folder(&self, parent: &FolderId, name: &str) -> Result<Option<FolderId>> {
        let state = self.read();
        Ok(state
            .folders
            .iter()
            .find(|(_, (n, p))| n == name && p == parent.id())
            .map(|(id, _)| FolderId::new(id.clone())))
    }

    async fn ensure_folder(&self, parent: &FolderId, name: &str) -> Result<FolderId> {
        self.mutate("creating folder", |state| {
            if let Some((id, _)) = state
                .folders
                .iter()
                .find(|(_, (n, p))| n == name && p == parent.id())
            {
                return Ok((FolderId::new(id.clone()), None));
            }
            if !state.folder_exists(parent.id()) {
                return Err(not_found("folder", parent.id()));
            }
            let id = state.fresh_id("group-v");
            state
                .folders
                .insert(id.clone(), (name.to_owned(), parent.id().to_owned()));
            Ok((FolderId::new(id), Some(format!("create folder {name}"))))
        })
        .await
    }

    async fn folder_vms(&self, folder: &FolderId) -> Result<Vec<ObservedVm>> {
        let state = self.read();
        let folders = state.subtree(folder.id());
        Ok(state
            .vms
            .iter()
            .filter(|(_, vm)| folders.contains(&vm.folder))
            .map(|(id, vm)| observed(id, vm))
            .collect())
    }

    async fn vm(&self, vm: &VmId) -> Result<Option<ObservedVm>> {
        let state = self.read();
        Ok(state.vms.get(vm.id()).map(|v| observed(vm.id(), v)))
    }

    async fn clone_vm(&self, request: &CloneRequest) -> Result<VmId> {
        self.mutate("cloning", |state| {
            if state.racing_clones.remove(&request.name) {
                let id = state.clone_from(request)?;
                // The other run's clone has not been powered on yet.
                state.vms.get_mut(&id).expect("cloned").power_state = "poweredOff".into();
                let markers = std::mem::take(&mut state.racing_markers);
                if !markers.is_empty() {
                    state.vms.get_mut(&id).expect("cloned").extra_config = markers;
                }
            }
            let taken = state
                .vms
                .values()
                .any(|vm| vm.folder == request.folder.id() && vm.name == request.name);
            if taken {
                return Err(Error::raised(
                    &format!("cloning `{}`", request.name),
                    Fault::DuplicateName,
                    None,
                ));
            }
            let id = state.clone_from(request)?;
            Ok((VmId::new(id), Some(format!("clone {}", request.name))))
        })
        .await
    }

    async fn macs_in_use(&self) -> Result<BTreeMap<String, String>> {
        let state = self.read();
        Ok(state
            .vms
            .iter()
            .map(|(id, vm)| (vm.mac.clone(), id.clone()))
            .collect())
    }

    async fn ensure_settings(&self, vm: &VmId, settings: &VmSettings) -> Result<bool> {
        self.mutate("reconfiguring", |state| {
            let changed = state.configure(vm.id(), settings, false)?;
            let name = &state.vms[vm.id()].name;
            Ok((changed, changed.then(|| format!("reconfigure {name}"))))
        })
        .await
    }

    async fn power_on(&self, vm: &VmId) -> Result<()> {
        self.mutate("powering on", |state| {
            let machine = state
                .vms
                .get_mut(vm.id())
                .ok_or_else(|| not_found("VM", vm.id()))?;
            let changed = machine.power_state != "poweredOn";
            machine.power_state = "poweredOn".into();
            Ok(((), changed.then(|| format!("power on {}", machine.name))))
        })
        .await
    }

    async fn shutdown_guest(&self, vm: &VmId) -> Result<()> {
        // The guest shuts down at once, unless guests are stubborn.
        self.mutate("shutting down the guest", |state| {
            let stubborn = state.stubborn_guests;
            let machine = state
                .vms
                .get_mut(vm.id())
                .ok_or_else(|| not_found("VM", vm.id()))?;
            if machine.power_state != "poweredOn" {
                return Err(Error::raised(
                    "shutting down the guest",
                    Fault::InvalidPowerState,
                    None,
                ));
            }
            if !stubborn {
                machine.power_state = "poweredOff".into();
            }
            Ok(((), Some(format!("shut down {}", machine.name))))
        })
        .await
    }

    async fn power_off(&self, vm: &VmId) -> Result<()> {
        self.mutate("powering off", |state| {
            let machine = state
                .vms
                .get_mut(vm.id())
                .ok_or_else(|| not_found("VM", vm.id()))?;
            let changed = machine.power_state == "poweredOn";
            machine.power_state = "poweredOff".into();
            Ok(((), changed.then(|| format!("power off {}", machine.name))))
        })
        .await
    }

    async fn destroy_vm(&self, vm: &VmId) -> Result<()> {
        self.mutate("destroying", |state| match state.vms.get(vm.id()) {
            None => Ok(((), None)),
            Some(machine) if machine.power_state == "poweredOn" => Err(Error::raised(
                &format!("destroying `{}`", machine.name),
                Fault::InvalidPowerState,
                None,
            )),
            Some(_) => {
                let machine = state.vms.remove(vm.id()).expect("present");
                Ok(((), Some(format!("destroy {}", machine.name))))
            }
        })
        .await
    }

    async fn destroy_folder(&self, folder: &FolderId) -> Result<()> {
        self.mutate("destroying folder", |state| {
            let Some((name, _)) = state.folders.get(folder.id()).cloned() else {
                return Ok(((), None));
            };
            let inside = state.subtree(folder.id());
            if state
                .vms
                .values()
                .any(|vm| inside.contains(&vm.folder) && vm.power_state == "poweredOn")
            {
                return Err(Error::raised(
                    "destroying folder",
                    Fault::InvalidState,
                    None,
                ));
            }
            state.vms.retain(|_, vm| !inside.contains(&vm.folder));
            state.folders.retain(|id, _| !inside.contains(id));
            Ok(((), Some(format!("destroy folder {name}"))))
        })
        .await
    }

    async fn recommend_datastore(&self, _query: &PlacementQuery) -> Result<DatastoreId> {
        self.count_read();
        Ok(DatastoreId::new("datastore-9"))
    }

    async fn guest_ip(&self, vm: &VmId) -> Result<Option<String>> {
        let state = self.read();
        Ok(state.vms.get(vm.id()).and_then(|v| v.ip.clone()))
    }

    /// What vkube would have recorded importing the fake Ubuntu template
    /// for Kubernetes v1.30 (the tests' version); other VMs as found.
    async fn template_facts(
        &self,
        inventory: &Inventory,
        vm: &VmId,
    ) -> Result<Option<TemplateFacts>> {
        let state = self.read();
        let Some(found) = state.vms.get(vm.id()) else {
            return Ok(None);
        };
        let is_template = vm.id() == TEMPLATE_ID;
        Ok(Some(TemplateFacts {
            name: found.name.clone(),
            path: inventory.path(vm.id()),
            template: found.template,
            hardware_version: Some(19),
            disk_uuid_enabled: found.disk_uuid_enabled,
            snapshot: is_template.then(|| "base".to_owned()),
            nics: vec![NicKind::Vmxnet3],
            guest_id: Some("ubuntu64Guest".into()),
            properties: BTreeMap::new(),
            record: ImageRecord {
                os: Some(ImageOs::Ubuntu),
                kubernetes_version: is_template.then(|| "v1.30.2".to_owned()),
                ..Default::default()
            },
            disk_bytes: (found.disk_kib as u64) * 1024,
        }))
    }

    async fn user_privileges(
        &self,
        objects: &[ObjectRef],
        _user: &str,
    ) -> Result<BTreeMap<String, BTreeSet<String>>> {
        let state = self.read();
        Ok(objects
            .iter()
            .map(|o| (o.id.clone(), state.privileges.clone()))
            .collect())
    }

    async fn session_privileges(
        &self,
        objects: &[ObjectRef],
        privileges: &[String],
    ) -> Result<BTreeMap<String, BTreeSet<String>>> {
        let state = self.read();
        let held: BTreeSet<String> = privileges
            .iter()
            .filter(|p| state.privileges.contains(*p))
            .cloned()
            .collect();
        Ok(objects
            .iter()
            .map(|o| (o.id.clone(), held.clone()))
            .collect())
    }

    async fn session_user(&self) -> Result<String> {
        self.count_read();
        Ok("administrator@vsphere.local".into())
    }

    async fn tags(&self, categories: &[&str]) -> Result<TagFacts> {
        let state = self.read();
        let wanted: Vec<&CategoryFacts> = state
            .tags
            .categories
            .iter()
            .filter(|c| categories.contains(&c.name.as_str()))
            .collect();
        let tags: Vec<TagFact> = state
            .tags
            .tags
            .iter()
            .filter(|t| wanted.iter().any(|c| c.id == t.category_id))
            .cloned()
            .collect();
        let attachments = state
            .tags
            .attachments
            .iter()
            .filter(|a| tags.iter().any(|t| t.id == a.tag_id))
            .cloned()
            .collect();
        Ok(TagFacts {
            categories: wanted.into_iter().cloned().collect(),
            tags,
            attachments,
        })
    }

    async fn roles(&self) -> Result<Vec<RoleInfo>> {
        Ok(self.read().roles.values().cloned().collect())
    }

    async fn privilege_ids(&self) -> Result<BTreeSet<String>> {
        // Not reported: no catalog id counts as unknown.
        self.count_read();
        Ok(BTreeSet::new())
    }

    async fn permissions_on(&self, object: &ObjectRef) -> Result<Vec<PermissionInfo>> {
        Ok(self
            .read()
            .permissions
            .iter()
            .filter(|p| p.entity == object.id)
            .cloned()
            .collect())
    }

    async fn create_role(&self, name: &str, privileges: &[String]) -> Result<i32> {
        self.mutate("creating a role", |state| {
            if state.roles.values().any(|r| r.name == name) {
                return Err(Error::raised("creating a role", Fault::AlreadyExists, None));
            }
            let id = state.roles.keys().max().map_or(1, |m| (*m).max(0) + 1);
            state.roles.insert(
                id,
                RoleInfo {
                    id,
                    name: name.to_owned(),
                    system: false,
                    privileges: privileges.iter().cloned().collect(),
                },
            );
            Ok((id, Some(format!("create role {name}"))))
        })
        .await
    }

    async fn update_role(&self, id: i32, name: &str, privileges: &[String]) -> Result<()> {
        self.mutate("updating a role", |state| {
            let role = state
                .roles
                .get_mut(&id)
                .ok_or_else(|| not_found("role", name))?;
            role.privileges = privileges.iter().cloned().collect();
            Ok(((), Some(format!("update role {name}"))))
        })
        .await
    }

    async fn set_permission(
        &self,
        object: &ObjectRef,
        principal: &str,
        role_id: i32,
        propagate: bool,
    ) -> Result<()> {
        self.mutate("setting a permission", |state| {
            let permission = PermissionInfo {
                entity: object.id.clone(),
                principal: principal.to_owned(),
                group: false,
                role_id,
                propagate,
            };
            let same = |p: &PermissionInfo| p.entity == object.id && p.principal == principal;
            if state.permissions.contains(&permission) {
                return Ok(((), None));
            }
            state.permissions.retain(|p| !same(p));
            state.permissions.push(permission);
            Ok((
                (),
                Some(format!(
                    "grant role {role_id} on {} to {principal}",
                    object.id
                )),
            ))
        })
        .await
    }

    async fn apply_zone_steps(
        &self,
        _observed: &Observed,
        steps: &[ZoneStep],
        done: &mut dyn for<'s> FnMut(usize, &'s ZoneStep),
    ) -> std::result::Result<(), (usize, Error)> {
        for (i, step) in steps.iter().enumerate() {
            self.mutate("applying a zones step", |state| {
                let changed = apply_zone_step(&mut state.tags, step)?;
                Ok(((), changed.then(|| step.to_string())))
            })
            .await
            .map_err(|e| (i, e))?;
            done(i, step);
        }
        Ok(())
    }
}

/// vCenter's system roles.
fn system_roles() -> BTreeMap<i32, RoleInfo> {
    [(-1, "Admin"), (-2, "ReadOnly"), (-5, "NoAccess")]
        .into_iter()
        .map(|(id, name)| {
            (
                id,
                RoleInfo {
                    id,
                    name: name.to_owned(),
                    system: true,
                    privileges: BTreeSet::new(),
                },
            )
        })
        .collect()
}

/// One zones step on the fake's tags, by name as vCenter resolves them;
/// returns whether anything changed (creates adopt what exists).
fn apply_zone_step(tags: &mut TagFacts, step: &ZoneStep) -> Result<bool> {
    let category_id = |tags: &TagFacts, name: &str| {
        tags.categories
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.id.clone())
            .ok_or_else(|| not_found("tag category", name))
    };
    let tag_id = |tags: &TagFacts, category: &str, name: &str| {
        let category = category_id(tags, category)?;
        tags.tags
            .iter()
            .find(|t| t.category_id == category && t.name == name)
            .map(|t| t.id.clone())
            .ok_or_else(|| not_found("tag", name))
    };
    Ok(match step {
        ZoneStep::CreateCategory {
            name,
            cardinality,
            associable_types,
            description,
        } => {
            if category_id(tags, name).is_ok() {
                return Ok(false);
            }
            tags.categories.push(CategoryFacts {
                id: format!("urn:vmomi:InventoryServiceCategory:{name}:GLOBAL"),
                name: name.clone(),
                description: description.clone(),
                cardinality: *cardinality,
                associable_types: associable_types.clone(),
            });
            true
        }
        ZoneStep::AddAssociableTypes {
            category,
            associable_types,
            ..
        } => {
            let id = category_id(tags, category)?;
            let found = tags
                .categories
                .iter_mut()
                .find(|c| c.id == id)
                .expect("found by id");
            found.associable_types = associable_types.clone();
            true
        }
        ZoneStep::CreateTag {
            category,
            name,
            description,
        } => {
            if tag_id(tags, category, name).is_ok() {
                return Ok(false);
            }
            let category_id = category_id(tags, category)?;
            tags.tags.push(TagFact {
                id: format!("urn:vmomi:InventoryServiceTag:{category}-{name}:GLOBAL"),
                name: name.clone(),
                category_id,
                description: description.clone(),
            });
            true
        }
        ZoneStep::Attach {
            category,
            tag,
            object,
            ..
        } => {
            let attachment = Attachment {
                tag_id: tag_id(tags, category, tag)?,
                object: object.clone(),
            };
            if tags.attachments.contains(&attachment) {
                return Ok(false);
            }
            tags.attachments.push(attachment);
            tags.attachments.sort();
            true
        }
        ZoneStep::Detach {
            category,
            tag,
            object,
            ..
        } => {
            let id = tag_id(tags, category, tag)?;
            let before = tags.attachments.len();
            tags.attachments
                .retain(|a| !(a.tag_id == id && a.object == *object));
            tags.attachments.len() != before
        }
    })
}

/// A clock that starts at a fixed time and moves only when slept on.
pub struct FakeClock {
    now: Mutex<SystemTime>,
}

impl FakeClock {
    /// 2026-01-01T00:00:00Z.
    pub fn new() -> FakeClock {
        FakeClock {
            now: Mutex::new(UNIX_EPOCH + Duration::from_secs(1_767_225_600)),
        }
    }
}

#[async_trait(?Send)]
impl Clock for FakeClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn sleep(&self, duration: Duration) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) += duration;
        tokio::task::yield_now().await;
    }
}

/// A seeded generator (xorshift64*): the same bytes every run.
pub struct SeededRandom {
    state: Mutex<u64>,
}

impl SeededRandom {
    /// The generator seeded with `seed` (non-zero).
    pub fn new(seed: u64) -> SeededRandom {
        SeededRandom {
            state: Mutex::new(seed.max(1)),
        }
    }
}

impl Random for SeededRandom {
    fn fill(&self, dest: &mut [u8]) {
        let mut x = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for byte in dest {
            *x ^= *x >> 12;
            *x ^= *x << 25;
            *x ^= *x >> 27;
            *byte = (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

/// A lock holder named by the test; holders the test declared gone are gone.
pub struct FakeHolder {
    id: String,
    gone: Vec<String>,
}

impl FakeHolder {
    /// Holder `id`, knowing `gone` have stopped.
    pub fn new(id: &str, gone: &[&str]) -> FakeHolder {
        FakeHolder {
            id: id.to_owned(),
            gone: gone.iter().map(|g| g.to_string()).collect(),
        }
    }
}

impl LockHolder for FakeHolder {
    fn id(&self) -> String {
        self.id.clone()
    }

    fn is_gone(&self, other: &str) -> bool {
        self.gone.iter().any(|g| g == other)
    }
}
