//! Changes that make a VM a usable node template: the image record and
//! `disk.enableUUID`, a snapshot for linked clones, a hardware upgrade, and
//! the template flag (with the way back, since templates cannot be
//! reconfigured or snapshotted).

use vim_rs::types::boxed_types::ValueElements;
use vim_rs::types::structs::{
    ManagedObjectReference, OptionValue, VirtualMachineConfigSpec, VirtualMachineFlagInfo,
};
use vim_rs::types::traits::OptionValueTrait;
use vim_rs::types::vim_any::VimAny;
use vkube_core::images::ImageRecord;

use crate::collect::{retrieve_objects, Wanted};
use crate::error::{Error, Result};
use crate::session::Session;

fn option(key: &str, value: &str) -> Box<dyn OptionValueTrait> {
    Box::new(OptionValue {
        key: key.to_string(),
        value: Some(VimAny::Value(ValueElements::PrimitiveString(
            value.to_string(),
        ))),
    })
}

async fn reconfigure(
    session: &Session,
    vm: &ManagedObjectReference,
    spec: &VirtualMachineConfigSpec,
    what: &str,
) -> Result<()> {
    let operation = format!("{what} on `{}`", vm.value);
    let task = vim_rs::mo::VirtualMachine::new(session.client(), &vm.value)
        .reconfig_vm_task(spec)
        .await
        .map_err(|e| Error::from_client(&operation, e))?;
    session.wait_task(&operation, task).await?;
    Ok(())
}

fn uuid_spec() -> VirtualMachineConfigSpec {
    VirtualMachineConfigSpec {
        flags: Some(VirtualMachineFlagInfo {
            disk_uuid_enabled: Some(true),
            ..Default::default()
        }),
        extra_config: Some(vec![option("disk.enableUUID", "TRUE")]),
        ..Default::default()
    }
}

/// Turn `disk.enableUUID` on (the flag and the extraConfig key vCenter's UI
/// and govc show).
pub async fn enable_disk_uuid(session: &Session, vm: &ManagedObjectReference) -> Result<()> {
    reconfigure(session, vm, &uuid_spec(), "setting disk.enableUUID").await
}

/// Write the image record (extraConfig and annotation) and turn
/// `disk.enableUUID` on, in one reconfiguration.
pub async fn write_record(
    session: &Session,
    vm: &ManagedObjectReference,
    record: &ImageRecord,
) -> Result<()> {
    let mut spec = uuid_spec();
    if let Some(extra) = spec.extra_config.as_mut() {
        extra.extend(record.to_extra_config().iter().map(|(k, v)| option(k, v)));
    }
    spec.annotation = Some(record.annotation());
    reconfigure(session, vm, &spec, "recording the image").await
}

/// Take a snapshot named `name` (no memory, no quiescing: the VM is off).
pub async fn create_snapshot(
    session: &Session,
    vm: &ManagedObjectReference,
    name: &str,
) -> Result<ManagedObjectReference> {
    let operation = format!("taking snapshot `{name}` of `{}`", vm.value);
    let task = vim_rs::mo::VirtualMachine::new(session.client(), &vm.value)
        .create_snapshot_task(name, Some("taken by vkube for linked clones"), false, false)
        .await
        .map_err(|e| Error::from_client(&operation, e))?;
    session
        .wait_task(&operation, task)
        .await?
        .ok_or_else(|| Error::Protocol {
            operation,
            detail: "the snapshot task returned no snapshot".into(),
        })
}

/// Upgrade the virtual hardware to `vmx-{version}` (irreversible).
pub async fn upgrade_hardware(
    session: &Session,
    vm: &ManagedObjectReference,
    version: u32,
) -> Result<()> {
    let operation = format!("upgrading `{}` to hardware version {version}", vm.value);
    let task = vim_rs::mo::VirtualMachine::new(session.client(), &vm.value)
        .upgrade_vm_task(Some(&format!("vmx-{version}")))
        .await
        .map_err(|e| Error::from_client(&operation, e))?;
    session.wait_task(&operation, task).await?;
    Ok(())
}

/// Mark a VM as a template.
pub async fn mark_as_template(session: &Session, vm: &ManagedObjectReference) -> Result<()> {
    vim_rs::mo::VirtualMachine::new(session.client(), &vm.value)
        .mark_as_template()
        .await
        .map_err(|e| Error::from_client(&format!("marking `{}` as a template", vm.value), e))
}

/// Turn a template back into a VM, in the root resource pool of the
/// compute resource of the host it is registered on.
pub async fn mark_as_vm(session: &Session, vm: &ManagedObjectReference) -> Result<()> {
    let operation = format!("marking `{}` as a VM", vm.value);
    let host = retrieve_objects(
        session,
        std::slice::from_ref(vm),
        &[Wanted {
            type_name: "VirtualMachine",
            paths: &["runtime.host"],
        }],
    )
    .await?
    .first_mut()
    .and_then(|p| p.take::<ManagedObjectReference>("runtime.host"))
    .ok_or_else(|| Error::Protocol {
        operation: operation.clone(),
        detail: "the template is registered on no host".into(),
    })?;
    let compute = retrieve_objects(
        session,
        std::slice::from_ref(&host),
        &[Wanted {
            type_name: "HostSystem",
            paths: &["parent"],
        }],
    )
    .await?
    .first_mut()
    .and_then(|p| p.take::<ManagedObjectReference>("parent"))
    .ok_or_else(|| Error::Protocol {
        operation: operation.clone(),
        detail: "its host has no compute resource".into(),
    })?;
    let pool = retrieve_objects(
        session,
        std::slice::from_ref(&compute),
        &[Wanted {
            type_name: compute.r#type.as_str(),
            paths: &["resourcePool"],
        }],
    )
    .await?
    .first_mut()
    .and_then(|p| p.take::<ManagedObjectReference>("resourcePool"))
    .ok_or_else(|| Error::Protocol {
        operation: operation.clone(),
        detail: "its compute resource has no resource pool".into(),
    })?;
    vim_rs::mo::VirtualMachine::new(session.client(), &vm.value)
        .mark_as_virtual_machine(&pool, Some(&host))
        .await
        .map_err(|e| Error::from_client(&operation, e))
}

/// Rename a VM or template.
pub async fn rename(session: &Session, vm: &ManagedObjectReference, name: &str) -> Result<()> {
    let operation = format!("renaming `{}` to `{name}`", vm.value);
    let task = vim_rs::mo::VirtualMachine::new(session.client(), &vm.value)
        .rename_task(name)
        .await
        .map_err(|e| Error::from_client(&operation, e))?;
    session.wait_task(&operation, task).await?;
    Ok(())
}
