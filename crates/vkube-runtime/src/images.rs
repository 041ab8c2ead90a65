//! Node images: importing them (`import`), checking and preparing
//! templates and listing images (`manage`), converting lone disks
//! (`convert`), and the template check clusters run before creating
//! anything ([`check_cluster_template`]).

mod convert;
mod import;
mod manage;

pub use convert::QEMU_IMG;
pub use import::{import, ImportReport, ImportRequest, ImportStatus};
pub use manage::{
    check, find_image, list, prepare, CheckReport, ImageRow, PrepareOptions, PrepareReport,
};

use vkube_core::cluster::{ClusterSpec, Problem};
use vkube_core::images::{check_template, ClusterNeeds, FindingId, Severity};
use vkube_vsphere::{Entity, Inventory, VmId, VspherePort};

use crate::error::{Error, Result};
use crate::progress::Progress;

/// What a cluster spec asks of its template.
pub fn needs_of(spec: &ClusterSpec) -> ClusterNeeds {
    ClusterNeeds {
        kubernetes_version: Some(spec.kubernetes_version().to_string()),
        os_family: Some(spec.os_family()),
        clone_mode: Some(spec.clone_mode()),
        disable_tunnel_offload: Some(spec.disable_tunnel_offload()),
    }
}

/// Check `template` for `spec` before anything is created: findings that
/// make every node fail (a Kubernetes version or OS family other than the
/// spec's, no network adapter) refuse the spec as a placement problem of
/// `spec.template`, naming both sides; other missing requirements are
/// warned about.
pub async fn check_cluster_template(
    vsphere: &dyn VspherePort,
    inventory: &Inventory,
    template: &Entity,
    spec: &ClusterSpec,
    progress: &dyn Progress,
) -> Result<()> {
    let Some(vm) = VmId::of(template) else {
        return Ok(());
    };
    let Some(facts) = vsphere.template_facts(inventory, &vm).await? else {
        return Ok(());
    };
    let findings = check_template(&facts, &needs_of(spec));
    let problems: Vec<Problem> = findings
        .iter()
        .filter(|f| f.blocks_clusters)
        .map(|f| Problem {
            field: "spec.template".into(),
            message: format!(
                "`{}`: {}{}",
                template.path,
                f.message,
                f.fix
                    .as_ref()
                    .map(|fix| format!("; {fix}"))
                    .unwrap_or_default()
            ),
        })
        .collect();
    if !problems.is_empty() {
        return Err(Error::Placement { problems });
    }
    // vkube sets disk.enableUUID on every clone, and placement already
    // warns about a missing snapshot: the rest is worth a warning.
    let worth_warning = |id: FindingId| !matches!(id, FindingId::DiskUuid | FindingId::Snapshot);
    for finding in findings
        .iter()
        .filter(|f| f.severity == Severity::Error && worth_warning(f.id))
    {
        progress.warn(&format!(
            "template `{}`: {} (see `vkube image check {}`)",
            template.path, finding.message, template.path
        ));
    }
    Ok(())
}
