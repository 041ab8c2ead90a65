//! Ownership: a cluster is one uid in one vCenter, and vkube changes only
//! what it created under that uid.
//!
//! - **Claims.** VMs in the cluster folder that carry this cluster's name
//!   (marker, or a node name) with another uid's markers were created by
//!   another state: a colleague's state file, or this one before it was
//!   lost or emptied. Going on would clone a second cluster of the same
//!   names and lease its addresses again, so every apply (and plan)
//!   refuses before any change, naming the uid and the VMs. A state that
//!   does not know the cluster refuses unmarked VMs of its node names as
//!   well: no run of this state cloned them. The way out is the state that
//!   created them, or [`adopt`](crate::adopt::adopt), which takes the
//!   cluster over from its VMs' markers.
//! - **vCenter.** A cluster is recorded with the instance UUID of its
//!   vCenter; another vCenter (a rebuilt one reuses VM ids for other VMs)
//!   is refused by apply, scale, plan, adopt and delete.

use std::collections::BTreeMap;

use vkube_core::cluster::{cluster_folder, ClusterSpec};
use vkube_store::ClusterRecord;
use vkube_vsphere::SessionFacts;

use crate::error::{Error, Result};
use crate::observe::Observation;

/// `ForeignVms` when the folder holds VMs that claim the cluster with
/// another uid than `known_uid` (the state's), or, when the state does not
/// know the cluster (`None`), VMs of its node names without markers.
pub(crate) fn check_claims(
    spec: &ClusterSpec,
    known_uid: Option<&str>,
    observation: &Observation,
) -> Result<()> {
    let unmarked = match known_uid {
        None => observation.unmarked.clone(),
        // This state's own interrupted clones: finished, as always.
        Some(_) => Vec::new(),
    };
    if observation.claimants.is_empty() && unmarked.is_empty() {
        return Ok(());
    }
    Err(Error::ForeignVms {
        cluster: spec.name().to_string(),
        folder: cluster_folder(spec.folder(), spec.name()),
        known_uid: known_uid.map(str::to_owned),
        found: observation.claimants.clone(),
        unmarked,
    })
}

/// `VcenterMismatch` when `record` lives in another vCenter than the one
/// `facts` describe. A record without a vCenter (written before vkube
/// recorded it) and a vCenter that reports no instance UUID pass.
pub fn check_vcenter(record: &ClusterRecord, facts: &SessionFacts) -> Result<()> {
    match (&record.vcenter_uuid, &facts.instance_uuid) {
        (Some(recorded), Some(connected)) if recorded != connected => {
            Err(Error::Store(vkube_store::Error::VcenterMismatch {
                cluster: record.name.clone(),
                recorded: recorded.clone(),
                connected: format!("{connected} (at {})", facts.host),
            }))
        }
        _ => Ok(()),
    }
}

/// `` `a`, `b`, `c` `` (the first eight, then "and N more").
pub(crate) fn quoted(names: &[String]) -> String {
    let mut text = names
        .iter()
        .take(8)
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 8 {
        text.push_str(&format!(" and {} more", names.len() - 8));
    }
    text
}

/// The text of [`Error::ForeignVms`].
pub(crate) fn foreign_message(
    cluster: &str,
    folder: &str,
    known_uid: Option<&str>,
    found: &BTreeMap<String, Vec<String>>,
    unmarked: &[String],
) -> String {
    let mut groups: Vec<String> = found
        .iter()
        .map(|(uid, vms)| format!("uid `{uid}`: {}", quoted(vms)))
        .collect();
    if !unmarked.is_empty() {
        groups.push(format!("without vkube markers: {}", quoted(unmarked)));
    }
    let head = format!(
        "cluster folder `{folder}` holds VMs of cluster `{cluster}` that this state did not create ({}); nothing was changed",
        groups.join("; ")
    );
    let way_out = match known_uid {
        None => format!(
            "This state does not know cluster `{cluster}`: its state file may be elsewhere, lost or emptied. Use the state that created the VMs, or take the cluster over into this state with `vkube cluster adopt -f SPEC` (which also recovers a lost state)"
        ),
        Some(uid) => format!(
            "This state knows cluster `{cluster}` as uid `{uid}`, so two states claim one cluster: delete the other one with the state that created it, or give this one another name or folder"
        ),
    };
    format!("{head}. {way_out}")
}
