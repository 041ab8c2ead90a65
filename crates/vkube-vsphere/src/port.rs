//! The vSphere port: everything vkube's runtime asks of vCenter, as one
//! object-safe trait with vkube-owned types only ([`VspherePort`]), and its
//! implementation over a live [`Session`]. The runtime holds a
//! `&dyn VspherePort`, so its tests run against an in-memory fake and a
//! server can wrap a session with its own limits or metrics.
//!
//! Every mutating call is idempotent where vSphere allows it (an existing
//! folder is found, a VM already on or off or gone counts as done), so a
//! caller interrupted at any point can simply call again.
//!
//! The port's futures are not `Send` (`async_trait(?Send)`): proving the
//! futures of `vim_rs` calls `Send` makes rustc spend tens of minutes on
//! this crate. Implementations are `Send + Sync`, so a multi-cluster
//! server runs each reconcile on a `tokio::task::LocalSet` (or a
//! current-thread runtime per worker) and shares the port between them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use async_trait::async_trait;
use vkube_core::images::TemplateFacts;
use vkube_core::topology::{Observed, Step as ZoneStep, TagFacts};

use crate::authorization::{Authorization, PermissionInfo, RoleInfo};
use crate::error::Result;
use crate::ids::{
    DatastoreClusterId, DatastoreId, FolderId, ObjectRef, ResourcePoolId, SnapshotId, VmId,
};
use crate::inventory::Inventory;
use crate::session::Session;
use crate::tagging::TaggingClient;
use crate::tls::TlsPolicy;
use crate::vm::{self, CloneRequest, NetworkTarget, ObservedVm, VmSettings};
use crate::NetworkId;

/// How vkube trusts vCenter's certificate, for clients that must reach the
/// same vCenter the same way (the cluster's CPI and CSI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The system's trusted roots.
    SystemRoots,
    /// The CA certificates in this file.
    CaFile(PathBuf),
    /// The certificate itself, by SHA-1 thumbprint (vkube pins it, or runs
    /// with verification off and pins what it saw).
    Thumbprint(String),
}

/// Facts about the session that do not need a round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    /// vCenter's host name or address, as vkube reaches it.
    pub host: String,
    /// Its HTTPS port.
    pub port: u16,
    /// How its certificate is trusted.
    pub trust: Trust,
    /// vCenter's instance UUID (`ServiceContent.about.instanceUuid`): which
    /// vCenter this is, whatever name or address it is reached by. A
    /// rebuilt vCenter gets a new one (and reuses managed object ids), so
    /// vkube records it with each cluster and refuses another vCenter.
    /// `None` when vCenter does not report one.
    pub instance_uuid: Option<String>,
}

/// Where Storage DRS should place a clone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementQuery {
    /// The datastore cluster to place in.
    pub pod: DatastoreClusterId,
    /// The VM or template cloned.
    pub template: VmId,
    /// The folder the clone goes in.
    pub folder: FolderId,
    /// The resource pool it runs in.
    pub pool: ResourcePoolId,
    /// The clone's name.
    pub name: String,
}

/// What vkube's runtime needs from vCenter. Object-safe: the runtime takes
/// `&dyn VspherePort`. Ids in answers are vkube's ([`VmId`], [`FolderId`], …);
/// errors are [`crate::Error`], with faults as [`crate::Fault`].
#[async_trait(?Send)]
pub trait VspherePort: Send + Sync {
    /// Endpoint and trust of the session.
    fn facts(&self) -> SessionFacts;

    /// API round trips made so far (for reports; a fake counts its calls).
    fn round_trips(&self) -> u64;

    /// The whole inventory, as one snapshot.
    async fn inventory(&self) -> Result<Inventory>;

    /// What a NIC backing on `network` needs.
    async fn network_target(&self, network: &NetworkId) -> Result<NetworkTarget>;

    /// The current snapshot of a VM or template (linked clones start there).
    async fn current_snapshot(&self, vm: &VmId) -> Result<Option<SnapshotId>>;

    /// The folder `name` directly inside `parent`, if it exists.
    async fn find_folder(&self, parent: &FolderId, name: &str) -> Result<Option<FolderId>>;

    /// The folder `name` inside `parent`, created if missing; a folder made
    /// concurrently by someone else is found and returned.
    async fn ensure_folder(&self, parent: &FolderId, name: &str) -> Result<FolderId>;

    /// Every VM directly in `folder`, in one read.
    async fn folder_vms(&self, folder: &FolderId) -> Result<Vec<ObservedVm>>;

    /// One VM, or `None` when it is gone.
    async fn vm(&self, vm: &VmId) -> Result<Option<ObservedVm>>;

    /// Clone a VM with the request's settings in the clone spec (powered on
    /// when [`CloneRequest::power_on`] and vCenter honours it). A name taken
    /// in the folder fails with [`crate::Fault::DuplicateName`].
    async fn clone_vm(&self, request: &CloneRequest) -> Result<VmId>;

    /// Every NIC MAC in vCenter (lowercase) and the id of the VM holding it.
    async fn macs_in_use(&self) -> Result<BTreeMap<String, String>>;

    /// Bring a VM to `settings`, changing only what differs; returns whether
    /// anything changed.
    async fn ensure_settings(&self, vm: &VmId, settings: &VmSettings) -> Result<bool>;

    /// Power a VM on; already on is success.
    async fn power_on(&self, vm: &VmId) -> Result<()>;

    /// Ask the guest to shut down; returns once asked. Fails when the guest
    /// cannot be asked (no VMware Tools running).
    async fn shutdown_guest(&self, vm: &VmId) -> Result<()>;

    /// Power a VM off at once; already off is success.
    async fn power_off(&self, vm: &VmId) -> Result<()>;

    /// Destroy a VM; already gone is success.
    async fn destroy_vm(&self, vm: &VmId) -> Result<()>;

    /// Destroy a folder and everything in it; already gone is success.
    async fn destroy_folder(&self, folder: &FolderId) -> Result<()>;

    /// The datastore Storage DRS recommends for a clone.
    async fn recommend_datastore(&self, query: &PlacementQuery) -> Result<DatastoreId>;

    /// The IP address the guest reports now, if any.
    async fn guest_ip(&self, vm: &VmId) -> Result<Option<String>>;

    /// What a template offers a cluster (OS, Kubernetes version, NICs,
    /// snapshot, …), for the check before anything is cloned; `None` when
    /// `vm` is not a VM.
    async fn template_facts(
        &self,
        inventory: &Inventory,
        vm: &VmId,
    ) -> Result<Option<TemplateFacts>>;

    /// The effective privileges of `user` on each object, by object id (an
    /// object the user holds nothing on maps to an empty set).
    async fn user_privileges(
        &self,
        objects: &[ObjectRef],
        user: &str,
    ) -> Result<BTreeMap<String, BTreeSet<String>>>;

    /// Which of `privileges` this session holds on each object, by object id.
    async fn session_privileges(
        &self,
        objects: &[ObjectRef],
        privileges: &[String],
    ) -> Result<BTreeMap<String, BTreeSet<String>>>;

    /// The user this session is logged in as.
    async fn session_user(&self) -> Result<String>;

    /// The tag categories named `categories`, their tags and attachments.
    async fn tags(&self, categories: &[&str]) -> Result<TagFacts>;

    /// Every role, system roles included.
    async fn roles(&self) -> Result<Vec<RoleInfo>>;

    /// Every privilege id this vCenter knows.
    async fn privilege_ids(&self) -> Result<BTreeSet<String>>;

    /// The permissions defined on `object` itself (not inherited ones).
    async fn permissions_on(&self, object: &ObjectRef) -> Result<Vec<PermissionInfo>>;

    /// Create role `name` with `privileges`; returns its id.
    async fn create_role(&self, name: &str, privileges: &[String]) -> Result<i32>;

    /// Give role `id` exactly `privileges`.
    async fn update_role(&self, id: i32, name: &str, privileges: &[String]) -> Result<()>;

    /// Grant role `role_id` to the user `principal` on `object`, replacing
    /// that principal's permission there; idempotent.
    async fn set_permission(
        &self,
        object: &ObjectRef,
        principal: &str,
        role_id: i32,
        propagate: bool,
    ) -> Result<()>;

    /// Run `steps` of a regions-and-zones plan made from `observed`, in
    /// order, telling `done` after each; stops at the first failure and
    /// returns how many steps were done with it. Every step is safe to run
    /// again (creates adopt what exists, attach and detach are idempotent).
    async fn apply_zone_steps(
        &self,
        observed: &Observed,
        steps: &[ZoneStep],
        done: &mut dyn for<'s> FnMut(usize, &'s ZoneStep),
    ) -> std::result::Result<(), (usize, crate::Error)>;
}

fn morefs(objects: &[ObjectRef]) -> Vec<vim_rs::types::structs::ManagedObjectReference> {
    objects.iter().map(ObjectRef::moref).collect()
}

fn vm_id(moref: &vim_rs::types::structs::ManagedObjectReference) -> VmId {
    VmId::new(moref.value.clone())
}

#[async_trait(?Send)]
impl VspherePort for Session {
    fn facts(&self) -> SessionFacts {
        let options = self.options();
        let trust = match &options.tls {
            TlsPolicy::Verify {
                ca_file: Some(path),
            } => Trust::CaFile(path.clone()),
            TlsPolicy::Verify { ca_file: None } => Trust::SystemRoots,
            TlsPolicy::Pinned(_) | TlsPolicy::Insecure => {
                Trust::Thumbprint(self.certificate().sha1.clone())
            }
        };
        SessionFacts {
            host: options.endpoint.host.clone(),
            port: options.endpoint.port,
            trust,
            instance_uuid: self
                .content()
                .about
                .instance_uuid
                .clone()
                .filter(|uuid| !uuid.is_empty()),
        }
    }

    fn round_trips(&self) -> u64 {
        Session::round_trips(self)
    }

    async fn inventory(&self) -> Result<Inventory> {
        Inventory::load(self).await
    }

    async fn network_target(&self, network: &NetworkId) -> Result<NetworkTarget> {
        NetworkTarget::resolve(self, network).await
    }

    async fn current_snapshot(&self, vm: &VmId) -> Result<Option<SnapshotId>> {
        Ok(vm::current_snapshot(self, &vm.moref())
            .await?
            .map(|s| SnapshotId::new(s.value)))
    }

    async fn find_folder(&self, parent: &FolderId, name: &str) -> Result<Option<FolderId>> {
        Ok(vm::child_folder(self, &parent.moref(), name)
            .await?
            .map(|f| FolderId::new(f.value)))
    }

    async fn ensure_folder(&self, parent: &FolderId, name: &str) -> Result<FolderId> {
        let folder = vm::ensure_folder(self, &parent.moref(), name).await?;
        Ok(FolderId::new(folder.value))
    }

    async fn folder_vms(&self, folder: &FolderId) -> Result<Vec<ObservedVm>> {
        vm::observe_folder(self, &folder.moref()).await
    }

    async fn vm(&self, vm: &VmId) -> Result<Option<ObservedVm>> {
        vm::observe_vm(self, &vm.moref()).await
    }

    async fn clone_vm(&self, request: &CloneRequest) -> Result<VmId> {
        Ok(vm_id(&vm::clone_vm(self, request).await?))
    }

    async fn macs_in_use(&self) -> Result<BTreeMap<String, String>> {
        vm::macs_in_use(self).await
    }

    async fn ensure_settings(&self, vm: &VmId, settings: &VmSettings) -> Result<bool> {
        vm::ensure_settings(self, &vm.moref(), settings).await
    }

    async fn power_on(&self, vm: &VmId) -> Result<()> {
        vm::power_on(self, &vm.moref()).await
    }

    async fn shutdown_guest(&self, vm: &VmId) -> Result<()> {
        vm::shutdown_guest(self, &vm.moref()).await
    }

    async fn power_off(&self, vm: &VmId) -> Result<()> {
        vm::power_off_now(self, &vm.moref()).await
    }

    async fn destroy_vm(&self, vm: &VmId) -> Result<()> {
        vm::destroy(self, &vm.moref()).await
    }

    async fn destroy_folder(&self, folder: &FolderId) -> Result<()> {
        vm::destroy(self, &folder.moref()).await
    }

    async fn recommend_datastore(&self, query: &PlacementQuery) -> Result<DatastoreId> {
        let datastore = vm::recommend_datastore(
            self,
            &query.pod.moref(),
            &query.template.moref(),
            &query.folder.moref(),
            &query.pool.moref(),
            &query.name,
        )
        .await?;
        Ok(DatastoreId::new(datastore.value))
    }

    async fn guest_ip(&self, vm: &VmId) -> Result<Option<String>> {
        vm::guest_ip(self, &vm.moref()).await
    }

    async fn template_facts(
        &self,
        inventory: &Inventory,
        vm: &VmId,
    ) -> Result<Option<TemplateFacts>> {
        crate::images::facts::read_one(self, inventory, &vm.moref()).await
    }

    async fn user_privileges(
        &self,
        objects: &[ObjectRef],
        user: &str,
    ) -> Result<BTreeMap<String, BTreeSet<String>>> {
        Authorization::new(self)?
            .user_privileges(&morefs(objects), user)
            .await
    }

    async fn session_privileges(
        &self,
        objects: &[ObjectRef],
        privileges: &[String],
    ) -> Result<BTreeMap<String, BTreeSet<String>>> {
        Authorization::new(self)?
            .session_privileges(&morefs(objects), privileges)
            .await
    }

    async fn session_user(&self) -> Result<String> {
        Ok(Authorization::new(self)?.current_session().await?.1)
    }

    async fn tags(&self, categories: &[&str]) -> Result<TagFacts> {
        let tagging = TaggingClient::login(self).await?;
        let tags = crate::topology::observe_tags(&tagging, categories).await;
        tagging.close().await;
        self.add_round_trips(tagging.round_trips());
        tags
    }

    async fn roles(&self) -> Result<Vec<RoleInfo>> {
        Authorization::new(self)?.roles().await
    }

    async fn privilege_ids(&self) -> Result<BTreeSet<String>> {
        Authorization::new(self)?.privileges().await
    }

    async fn permissions_on(&self, object: &ObjectRef) -> Result<Vec<PermissionInfo>> {
        Authorization::new(self)?
            .entity_permissions(&object.moref(), false)
            .await
    }

    async fn create_role(&self, name: &str, privileges: &[String]) -> Result<i32> {
        Authorization::new(self)?
            .create_role(name, privileges)
            .await
    }

    async fn update_role(&self, id: i32, name: &str, privileges: &[String]) -> Result<()> {
        Authorization::new(self)?
            .update_role(id, name, privileges)
            .await
    }

    async fn set_permission(
        &self,
        object: &ObjectRef,
        principal: &str,
        role_id: i32,
        propagate: bool,
    ) -> Result<()> {
        Authorization::new(self)?
            .set_permission(&object.moref(), principal, false, role_id, propagate)
            .await
    }

    async fn apply_zone_steps(
        &self,
        observed: &Observed,
        steps: &[ZoneStep],
        done: &mut dyn for<'s> FnMut(usize, &'s ZoneStep),
    ) -> std::result::Result<(), (usize, crate::Error)> {
        let tagging = TaggingClient::login(self).await.map_err(|e| (0, e))?;
        let mut applier = crate::topology::Applier::new(&tagging, observed);
        let mut result = Ok(());
        for (i, step) in steps.iter().enumerate() {
            if let Err(e) = applier.apply(step).await {
                result = Err((i, e));
                break;
            }
            done(i, step);
        }
        tagging.close().await;
        self.add_round_trips(tagging.round_trips());
        result
    }
}
