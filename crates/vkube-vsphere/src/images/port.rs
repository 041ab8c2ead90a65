//! The image port: what `vkube image …` asks of vCenter beyond the
//! [`VspherePort`], as one object-safe trait with vkube-owned ids
//! ([`ImagePort`]), implemented by [`Session`]. The runtime's image
//! commands take `&dyn ImagePort`, so they never name a `vim_rs` type.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use vkube_core::images::TemplateFacts;

use super::{facts, lease, prepare, Finish, ImportTarget, Imported, Package, TransferProgress};
use crate::error::Result;
use crate::ids::VmId;
use crate::inventory::Inventory;
use crate::port::VspherePort;
use crate::session::Session;

/// A future that, once it resolves, cancels an import.
pub type Cancel<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Image operations: facts, import over an NFC lease, and the changes that
/// make a VM a node template. Every change is to one VM, named by id.
#[async_trait(?Send)]
pub trait ImagePort: VspherePort {
    /// Every template, and every VM vkube imported, with its facts, by path.
    async fn images(&self, inventory: &Inventory) -> Result<Vec<(VmId, TemplateFacts)>>;

    /// vCenter's import spec for `descriptor` at `target` (validates the
    /// descriptor against the target; changes nothing).
    async fn import_spec(
        &self,
        descriptor: &str,
        target: &ImportTarget,
    ) -> Result<lease::ImportSpec>;

    /// Import `package` as `target` over an HTTP NFC lease; `cancel`
    /// resolving aborts the lease and removes the partial VM.
    async fn import(
        &self,
        target: &ImportTarget,
        package: Package,
        finish: &Finish,
        expected_sha256: Option<&str>,
        progress: &dyn TransferProgress,
        cancel: Cancel<'_>,
    ) -> Result<Imported>;

    /// Rename a VM or template.
    async fn rename(&self, vm: &VmId, name: &str) -> Result<()>;

    /// Turn `disk.enableUUID` on.
    async fn enable_disk_uuid(&self, vm: &VmId) -> Result<()>;

    /// Take a snapshot named `name` (the VM is off: no memory, no quiescing).
    async fn create_snapshot(&self, vm: &VmId, name: &str) -> Result<()>;

    /// Upgrade the virtual hardware to `vmx-{version}` (irreversible).
    async fn upgrade_hardware(&self, vm: &VmId, version: u32) -> Result<()>;

    /// Mark a VM as a template.
    async fn mark_as_template(&self, vm: &VmId) -> Result<()>;

    /// Turn a template back into a VM.
    async fn mark_as_vm(&self, vm: &VmId) -> Result<()>;
}

#[async_trait(?Send)]
impl ImagePort for Session {
    async fn images(&self, inventory: &Inventory) -> Result<Vec<(VmId, TemplateFacts)>> {
        Ok(facts::list(self, inventory)
            .await?
            .into_iter()
            .map(|(vm, facts)| (VmId::new(vm.value), facts))
            .collect())
    }

    async fn import_spec(
        &self,
        descriptor: &str,
        target: &ImportTarget,
    ) -> Result<lease::ImportSpec> {
        lease::create_import_spec(self, descriptor, target).await
    }

    async fn import(
        &self,
        target: &ImportTarget,
        package: Package,
        finish: &Finish,
        expected_sha256: Option<&str>,
        progress: &dyn TransferProgress,
        cancel: Cancel<'_>,
    ) -> Result<Imported> {
        super::import(
            self,
            target,
            package,
            finish,
            expected_sha256,
            progress,
            cancel,
        )
        .await
    }

    async fn rename(&self, vm: &VmId, name: &str) -> Result<()> {
        prepare::rename(self, &vm.moref(), name).await
    }

    async fn enable_disk_uuid(&self, vm: &VmId) -> Result<()> {
        prepare::enable_disk_uuid(self, &vm.moref()).await
    }

    async fn create_snapshot(&self, vm: &VmId, name: &str) -> Result<()> {
        prepare::create_snapshot(self, &vm.moref(), name)
            .await
            .map(drop)
    }

    async fn upgrade_hardware(&self, vm: &VmId, version: u32) -> Result<()> {
        prepare::upgrade_hardware(self, &vm.moref(), version).await
    }

    async fn mark_as_template(&self, vm: &VmId) -> Result<()> {
        prepare::mark_as_template(self, &vm.moref()).await
    }

    async fn mark_as_vm(&self, vm: &VmId) -> Result<()> {
        prepare::mark_as_vm(self, &vm.moref()).await
    }
}
