//! `image check`, `image prepare` and `image ls`: templates as clusters see
//! them, and the fixes vkube can apply.

use serde::Serialize;
use vkube_core::images::{check_template, ClusterNeeds, Finding, Fix, Severity, TemplateFacts};
use vkube_vsphere::images::{ImagePort, BASE_SNAPSHOT};
use vkube_vsphere::{Details, Error, Inventory, Result, VmId};

/// What `image check` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    /// The template as vCenter shows it.
    pub image: TemplateFacts,
    /// Every finding.
    pub findings: Vec<Finding>,
    /// Whether nothing required is missing.
    pub ok: bool,
}

/// One row of `image ls`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRow {
    /// Name.
    pub name: String,
    /// Inventory path.
    pub path: String,
    /// Template or VM.
    pub template: bool,
    /// OS family.
    pub os: String,
    /// Kubernetes version recorded.
    pub kubernetes_version: Option<String>,
    /// Provisioned disk bytes.
    pub size_bytes: u64,
    /// Current snapshot.
    pub snapshot: Option<String>,
    /// `disk.enableUUID`.
    pub disk_uuid_enabled: bool,
    /// Hardware version.
    pub hardware_version: Option<u32>,
    /// Whether vkube imported it.
    pub imported_by_vkube: bool,
    /// Where it came from.
    pub source: Option<String>,
}

/// The VM or template `name` names: an absolute inventory path, or a name
/// unique among all VMs.
pub fn find_image<'a>(inventory: &'a Inventory, name: &str) -> Result<&'a vkube_vsphere::Entity> {
    if name.starts_with('/') {
        let entity = inventory.resolve(name, "image")?;
        return match entity.details {
            Details::VirtualMachine { .. } => Ok(entity),
            _ => Err(Error::Invalid(format!(
                "`{name}` is a {}, not a VM or template",
                entity.type_name
            ))),
        };
    }
    let found: Vec<_> = inventory
        .select(|d| matches!(d, Details::VirtualMachine { .. }))
        .into_iter()
        .filter(|e| e.name == name)
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(Error::Invalid(format!(
            "no VM or template is named `{name}` (see `vkube image ls`)"
        ))),
        many => Err(Error::Invalid(format!(
            "`{name}` is ambiguous: {}; give its path",
            many.iter()
                .map(|e| e.path.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

async fn facts_of(
    images: &dyn ImagePort,
    inventory: &Inventory,
    vm: &VmId,
    name: &str,
) -> Result<TemplateFacts> {
    images
        .template_facts(inventory, vm)
        .await?
        .map(|mut f| {
            // Fix commands repeat the name as the user gave it.
            f.name = name.to_string();
            f
        })
        .ok_or_else(|| Error::Invalid(format!("`{name}` disappeared while being read")))
}

/// Check `name` against what a cluster needs (`needs` from a spec, or
/// empty for the template alone).
pub async fn check(
    images: &dyn ImagePort,
    name: &str,
    needs: &ClusterNeeds,
) -> Result<CheckReport> {
    let inventory = images.inventory().await?;
    let entity = find_image(&inventory, name)?;
    let image = facts_of(images, &inventory, &vm_of(entity, name)?, name).await?;
    let findings = check_template(&image, needs);
    let ok = findings.iter().all(|f| f.severity < Severity::Error);
    Ok(CheckReport {
        image,
        findings,
        ok,
    })
}

/// What `image prepare` may change beyond `disk.enableUUID`.
#[derive(Debug, Clone, Default)]
pub struct PrepareOptions {
    /// Take a snapshot if there is none (also done when `needs` asks for
    /// linked clones).
    pub snapshot: bool,
    /// Upgrade the hardware to this version if it is older.
    pub hardware_version: Option<u32>,
    /// Mark as template (`Some(true)`) or as VM (`Some(false)`).
    pub template: Option<bool>,
    /// Only say what would change.
    pub dry_run: bool,
}

/// What `image prepare` did (or, in a dry run, would do).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PrepareReport {
    /// Image path.
    pub path: String,
    /// Changes, in order.
    pub changes: Vec<String>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The check afterwards (before, in a dry run).
    pub check: CheckReport,
}

/// Apply the fixable findings: `disk.enableUUID`, a snapshot when asked
/// for or needed, a hardware upgrade when asked for, the template flag.
/// A template is turned into a VM for the changes and back afterwards.
pub async fn prepare(
    images: &dyn ImagePort,
    name: &str,
    options: &PrepareOptions,
    needs: &ClusterNeeds,
) -> Result<PrepareReport> {
    let inventory = images.inventory().await?;
    let entity = find_image(&inventory, name)?;
    let vm = vm_of(entity, name)?;
    let before = facts_of(images, &inventory, &vm, name).await?;
    let findings = check_template(&before, needs);
    let mut fixes: Vec<Fix> = findings
        .iter()
        .filter_map(|f| f.action)
        .filter(|fix| match fix {
            Fix::EnableDiskUuid | Fix::CreateSnapshot => true,
            Fix::UpgradeHardware { .. } => false,
        })
        .collect();
    if options.snapshot && before.snapshot.is_none() && !fixes.contains(&Fix::CreateSnapshot) {
        fixes.push(Fix::CreateSnapshot);
    }
    if let Some(version) = options.hardware_version {
        if before.hardware_version.is_none_or(|v| v < version) {
            fixes.push(Fix::UpgradeHardware { version });
        }
    }
    // Hardware first (a snapshot pins the old version), the snapshot last.
    fixes.sort_by_key(|f| match f {
        Fix::UpgradeHardware { .. } => 0,
        Fix::EnableDiskUuid => 1,
        Fix::CreateSnapshot => 2,
    });
    let want_template = options.template.unwrap_or(before.template);
    let mut changes: Vec<String> = fixes.iter().map(describe).collect();
    if want_template != before.template {
        changes.push(if want_template {
            "mark as template".into()
        } else {
            "mark as VM".into()
        });
    }
    if options.dry_run || changes.is_empty() {
        return Ok(PrepareReport {
            path: entity.path.clone(),
            changes,
            dry_run: options.dry_run,
            check: CheckReport {
                ok: findings.iter().all(|f| f.severity < Severity::Error),
                image: before,
                findings,
            },
        });
    }
    let unmark = before.template && !fixes.is_empty();
    if unmark {
        images.mark_as_vm(&vm).await?;
    }
    let applied = apply(images, &vm, &fixes).await;
    let is_template_now = !unmark && before.template;
    if want_template && !is_template_now {
        // Back to a template even when a fix failed: the image stays as it was found.
        images.mark_as_template(&vm).await?;
    } else if !want_template && is_template_now {
        images.mark_as_vm(&vm).await?;
    }
    applied?;
    let check = self::check(images, &entity.path, needs).await?;
    Ok(PrepareReport {
        path: entity.path.clone(),
        changes,
        dry_run: false,
        check,
    })
}

fn describe(fix: &Fix) -> String {
    match fix {
        Fix::EnableDiskUuid => "set disk.enableUUID".into(),
        Fix::CreateSnapshot => format!("take snapshot `{BASE_SNAPSHOT}`"),
        Fix::UpgradeHardware { version } => format!("upgrade hardware to version {version}"),
    }
}

async fn apply(images: &dyn ImagePort, vm: &VmId, fixes: &[Fix]) -> Result<()> {
    for fix in fixes {
        match fix {
            Fix::EnableDiskUuid => images.enable_disk_uuid(vm).await?,
            Fix::CreateSnapshot => images.create_snapshot(vm, BASE_SNAPSHOT).await?,
            Fix::UpgradeHardware { version } => images.upgrade_hardware(vm, *version).await?,
        }
    }
    Ok(())
}

/// The VM id of an image found by [`find_image`].
fn vm_of(entity: &vkube_vsphere::Entity, name: &str) -> Result<VmId> {
    VmId::of(entity).ok_or_else(|| Error::Invalid(format!("`{name}` is not a VM or template")))
}

/// Every template, and every VM vkube imported.
pub async fn list(images: &dyn ImagePort) -> Result<Vec<ImageRow>> {
    let inventory = images.inventory().await?;
    Ok(images
        .images(&inventory)
        .await?
        .into_iter()
        .map(|(_, f)| ImageRow {
            os: f.os().to_string(),
            name: f.name,
            path: f.path,
            template: f.template,
            kubernetes_version: f.record.kubernetes_version.clone(),
            size_bytes: f.disk_bytes,
            snapshot: f.snapshot,
            disk_uuid_enabled: f.disk_uuid_enabled,
            hardware_version: f.hardware_version,
            imported_by_vkube: f.record.is_recorded(),
            source: f.record.source,
        })
        .collect())
}
