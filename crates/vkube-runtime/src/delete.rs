//! `delete`: power off and destroy every VM of a cluster, remove its
//! folder, release its addresses and forget it. A VM already gone counts as
//! deleted. `--force` removes the cluster from the store even when vCenter
//! objects remain (once deletion has been stuck for 15 minutes, or `--now`),
//! and lists those orphans.

use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use vkube_core::cluster::ClusterSpec;
use vkube_store::{EventLevel, ForceDelete, StateStore};
use vkube_vsphere::VspherePort;

use crate::apply::record_event;
use crate::context::Context;
use crate::error::{Error, NodeFailure, Result};
use crate::guest;
use crate::observe::observe;
use crate::ownership::check_vcenter;
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
    /// How long the apply lock is held (a delete takes it like an apply).
    pub lock_ttl: Duration,
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
    store: &dyn StateStore,
    name: &str,
    ctx: &Context<'_>,
    options: &DeleteOptions,
    progress: &dyn Progress,
) -> Result<DeleteReport> {
    // Another vCenter is never touched: refused, or with `--force`
    // treated as unreachable (the cluster is forgotten, its VMs listed).
    let known = store.cluster(name).await?;
    let vsphere = match vsphere.map(|v| (v, check_vcenter(&known, &v.facts()))) {
        Some((v, Ok(()))) => Some(v),
        Some((_, Err(e))) if !matches!(options.force, ForceDelete::No) => {
            progress.warn(&format!(
                "{e}; forgetting the cluster without touching this vCenter"
            ));
            None
        }
        Some((_, Err(e))) => return Err(e),
        None => None,
    };
    let record = store.mark_deleting(name, ctx.timestamp()).await?;
    let event = |level, kind, message: String, node: Option<String>| async move {
        let event = Event {
            cluster: name,
            level,
            kind,
            node: node.as_deref(),
            message: &message,
        };
        record_event(store, ctx, progress, event).await;
    };
    event(
        EventLevel::Info,
        EventKind::DeletionStarted,
        "deleting the cluster".into(),
        None,
    )
    .await;
    let mut report = DeleteReport {
        cluster: name.to_string(),
        ..Default::default()
    };
    let mut failures = Vec::new();
    let mut released = 0;
    // Deleting VMs is a cluster write like any apply's: it takes the apply
    // lock, so a delete and an apply never run at once. Removing the
    // cluster removes its lock; a delete that stops short releases it.
    let mut lock = None;
    if let Some(vsphere) = vsphere {
        let held = crate::apply::acquire_lock(store, ctx, name, options.lock_ttl).await?;
        let fence = held.fence();
        lock = Some(held);
        let spec = ClusterSpec::from_yaml(&record.spec_yaml)?;
        let inventory = vsphere.inventory().await?;
        let observation = observe(vsphere, &inventory, &spec, &record.uid).await?;
        let limit = Semaphore::new(options.parallel.max(1));
        // Workers first, then the control plane one node at a time, newest
        // first: whatever still runs keeps a working API server. Each node
        // is one chain: power-off (from the observed power state, no read
        // first) and destroy.
        let mut results = Vec::new();
        for wave in vkube_core::cluster::delete_order(&observation.cluster.nodes) {
            let vms = wave
                .iter()
                .filter_map(|node| observation.vms.get(node).map(|(vm, seen)| (node, vm, seen)));
            results.extend(
                futures::future::join_all(vms.map(|(node, vm_ref, seen)| {
                    let limit = &limit;
                    async move {
                        let _permit = limit.acquire().await.expect("semaphore open");
                        progress.started(StepKind::DeleteNode, Some(node));
                        let result = guest::remove_vm(
                            vsphere,
                            ctx.clock,
                            vm_ref,
                            &seen.power_state,
                            options.power_off_grace,
                        )
                        .await;
                        let message = result.as_ref().err().map(|e| e.to_string());
                        progress.finished(StepKind::DeleteNode, Some(node), message.as_deref());
                        (node.clone(), result)
                    }
                }))
                .await,
            );
        }
        for (node, result) in results {
            match result {
                Ok(()) => {
                    released += store
                        .delete_node(&fence, &node)
                        .await?
                        .released_leases
                        .len();
                    event(
                        EventLevel::Info,
                        EventKind::NodeDeleted,
                        "VM destroyed".into(),
                        Some(node.clone()),
                    )
                    .await;
                    report.destroyed.push(node);
                }
                Err(e) => {
                    event(
                        EventLevel::Error,
                        EventKind::NodeDeleteFailed,
                        e.to_string(),
                        Some(node.clone()),
                    )
                    .await;
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
        if let Some(lock) = &lock {
            if let Err(e) = store.release_apply_lock(lock).await {
                tracing::warn!("releasing the apply lock of `{name}` failed: {e}");
            }
        }
        return Err(Error::NodesFailed {
            cluster: name.into(),
            failures,
        });
    }
    let removed = store.remove_cluster(name, force, ctx.timestamp()).await?;
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
