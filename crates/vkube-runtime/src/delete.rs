//! `delete`: power off and destroy every VM of a cluster, remove its
//! folder, release its addresses and forget it. A VM already gone counts as
//! deleted. `--force` removes the cluster from the store even when vCenter
//! objects remain (once deletion has been stuck for 15 minutes, or `--now`),
//! and lists those orphans.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use vkube_core::cluster::ClusterSpec;
use vkube_store::{ClusterStore, EventLevel, ForceDelete, SqliteStore};
use vkube_vsphere::VspherePort;

use crate::apply::record_event;
use crate::context::Context;
use crate::error::{Error, NodeFailure, Result};
use crate::guest;
use crate::observe::observe;
use crate::progress::{Event, EventKind, Progress, StepKind};

/// How a delete runs.
#[derive(Debug, Clone)]
pub struct DeleteOptions {
    /// Remove from the store even if vCenter objects remain.
    pub force: ForceDelete,
    /// Guest shutdown grace before a hard power-off.
    pub power_off_grace: Duration,
    /// VMs deleted at once.
    pub parallel: usize,
}

/// What a delete did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteReport {
    /// Cluster name.
    pub cluster: String,
    /// VMs destroyed.
    pub destroyed: Vec<String>,
    /// Whether the cluster folder was removed.
    pub folder_removed: bool,
    /// Addresses released.
    pub released_addresses: usize,
    /// vCenter objects left behind (forced delete or strangers in the folder).
    pub orphans: Vec<String>,
}

/// Delete cluster `name`. With `vsphere` `None` (vCenter unreachable) only a
/// forced delete can proceed, and every recorded node is reported as an orphan.
pub async fn delete(
    vsphere: Option<&dyn VspherePort>,
    store: &SqliteStore,
    name: &str,
    ctx: &Context<'_>,
    options: &DeleteOptions,
    progress: &dyn Progress,
) -> Result<DeleteReport> {
    let record = store.mark_deleting(name, ctx.timestamp())?;
    let event = |level, kind, message: &str, node: Option<&str>| {
        let event = Event {
            cluster: name,
            level,
            kind,
            node,
            message,
        };
        record_event(store, ctx, progress, event);
    };
    event(
        EventLevel::Info,
        EventKind::DeletionStarted,
        "deleting the cluster",
        None,
    );
    let mut report = DeleteReport {
        cluster: name.to_string(),
        ..Default::default()
    };
    let mut failures = Vec::new();
    let mut released = 0;
    if let Some(vsphere) = vsphere {
        let spec = ClusterSpec::from_yaml(&record.spec_yaml)?;
        let inventory = vsphere.inventory().await?;
        let observation = observe(vsphere, &inventory, &spec, &record.uid).await?;
        let limit = Semaphore::new(options.parallel.max(1));
        let results =
            futures::future::join_all(observation.vms.iter().map(|(node, (vm_ref, _))| {
                let limit = &limit;
                async move {
                    let _permit = limit.acquire().await.expect("semaphore open");
                    progress.started(StepKind::DeleteNode, Some(node));
                    let result = async {
                        guest::power_off(vsphere, ctx.clock, vm_ref, options.power_off_grace)
                            .await?;
                        Ok::<_, Error>(vsphere.destroy_vm(vm_ref).await?)
                    }
                    .await;
                    let message = result.as_ref().err().map(|e| e.to_string());
                    progress.finished(StepKind::DeleteNode, Some(node), message.as_deref());
                    (node.clone(), result)
                }
            }))
            .await;
        for (node, result) in results {
            match result {
                Ok(()) => {
                    released += store.delete_node(name, &node)?.released_leases.len();
                    let destroyed = "VM destroyed";
                    event(
                        EventLevel::Info,
                        EventKind::NodeDeleted,
                        destroyed,
                        Some(&node),
                    );
                    report.destroyed.push(node);
                }
                Err(e) => {
                    event(
                        EventLevel::Error,
                        EventKind::NodeDeleteFailed,
                        &e.to_string(),
                        Some(&node),
                    );
                    failures.push(NodeFailure {
                        node,
                        step: StepKind::DeleteNode,
                        message: e.to_string(),
                    });
                }
            }
        }
        report.orphans.extend(
            observation
                .strangers
                .iter()
                .map(|s| format!("VM `{s}` (not vkube's, left in place)")),
        );
        if let Some(folder) = &observation.folder {
            if failures.is_empty() && observation.strangers.is_empty() {
                progress.started(StepKind::DeleteFolder, None);
                let removed = vsphere.destroy_folder(folder).await;
                progress.finished(
                    StepKind::DeleteFolder,
                    None,
                    removed.as_ref().err().map(|e| e.to_string()).as_deref(),
                );
                match removed {
                    Ok(()) => report.folder_removed = true,
                    Err(e) => failures.push(NodeFailure {
                        node: "(folder)".into(),
                        step: StepKind::DeleteFolder,
                        message: e.to_string(),
                    }),
                }
            } else {
                report
                    .orphans
                    .push(format!("folder `{}`", inventory.path(folder.id())));
            }
        } else {
            report.folder_removed = true;
        }
    }
    let force = if failures.is_empty() && vsphere.is_some() {
        ForceDelete::Now
    } else {
        options.force
    };
    if matches!(force, ForceDelete::No) && !failures.is_empty() {
        return Err(Error::NodesFailed {
            cluster: name.into(),
            failures,
        });
    }
    let removed = store.remove_cluster(name, force, ctx.timestamp())?;
    report.released_addresses = released + removed.released_leases.len();
    for node in removed.nodes {
        report.orphans.push(format!(
            "VM `{}`{}",
            node.node.name,
            node.node
                .vm_id
                .map(|id| format!(" ({id})"))
                .unwrap_or_default()
        ));
    }
    for failure in failures {
        if !report.orphans.iter().any(|o| o.contains(&failure.node)) {
            report
                .orphans
                .push(format!("`{}`: {}", failure.node, failure.message));
        }
    }
    Ok(report)
}
