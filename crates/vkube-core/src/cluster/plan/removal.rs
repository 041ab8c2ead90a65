//! Removing one node: the guards that must all pass first, and the chain of
//! steps, leaving out what the observation shows done:
//! `DrainNode` → `RemoveEtcdMember` → `DeleteNodeObject` → `DeleteNode` →
//! `ReleaseAddress`.

use super::observed::{KubeNode, ObservedNode};
use super::steps::{DeleteReason, HoldReason, Step};
use super::Planner;
use crate::cluster::health_check::ConditionStatus;

impl Planner<'_> {
    /// Plans the removal of `node`, or holds it (keeping its lease) when a
    /// guard does not pass. Returns whether any step was planned.
    pub(super) fn remove(&mut self, node: &ObservedNode, reason: DeleteReason) -> bool {
        if let Err(hold) = self.removal_guard(node, &reason) {
            self.keep_leases.insert(node.name.clone());
            self.hold(&node.pool, Some(&node.name), hold);
            return false;
        }
        let registered = node.kube.registered();
        if let Some(registered) = registered.filter(|r| !r.drained) {
            self.steps.push(Step::DrainNode {
                node: node.name.clone(),
                reason: reason.clone(),
                kubelet_unresponsive: registered.ready == ConditionStatus::Unknown,
            });
        }
        let member = node.is_control_plane()
            && self
                .etcd_after
                .as_ref()
                .is_some_and(|etcd| etcd.is_member(&node.name));
        if member {
            if let Some(etcd) = self.etcd_after.as_mut() {
                etcd.remove(&node.name);
            }
            self.steps.push(Step::RemoveEtcdMember {
                node: node.name.clone(),
                reason: reason.clone(),
            });
        }
        if registered.is_some() {
            self.steps.push(Step::DeleteNodeObject {
                node: node.name.clone(),
                reason: reason.clone(),
            });
        }
        self.steps.push(Step::DeleteNode {
            node: node.name.clone(),
            reason,
        });
        if self.leases.contains_key(&node.name) {
            self.steps.push(Step::ReleaseAddress {
                node: node.name.clone(),
            });
            self.released.insert(node.name.clone());
        }
        true
    }

    /// `Ok` when every guard of removing `node` passes; else the first that
    /// does not.
    fn removal_guard(&self, node: &ObservedNode, reason: &DeleteReason) -> Result<(), HoldReason> {
        let registered_or_unreachable = matches!(
            node.kube,
            KubeNode::Registered(_) | KubeNode::Unreachable { .. }
        );
        if registered_or_unreachable && !self.api_reachable {
            return Err(HoldReason::ApiUnreachable);
        }
        // A worker whose Node object is gone serves no pods: waiting for its
        // replacement would keep a VM that does nothing (e.g. one whose
        // removal began as a remediation, shutting down now).
        let serves = node.kube != KubeNode::Deregistered || node.is_control_plane();
        if let DeleteReason::Replaced { by } = reason {
            if node.kube.is_known() && serves {
                let replacement = self.observed.node(by);
                if !replacement.is_some_and(|r| r.kube.is_ready()) {
                    return Err(HoldReason::WaitingForReady { node: by.clone() });
                }
                let joined = self
                    .observed
                    .etcd
                    .as_ref()
                    .is_none_or(|etcd| etcd.is_healthy_member(by));
                if node.is_control_plane() && !joined {
                    return Err(HoldReason::WaitingForEtcdMember { node: by.clone() });
                }
            }
        }
        if !node.is_control_plane() {
            return Ok(());
        }
        match &self.etcd_after {
            Some(etcd) if etcd.is_member(&node.name) => etcd
                .check_removal(&node.name)
                .map_err(|why| HoldReason::EtcdQuorum { why }),
            Some(_) => Ok(()),
            None if self.control_plane_known && self.api_reachable => Err(HoldReason::EtcdUnknown),
            None if self.control_plane_known => Err(HoldReason::ApiUnreachable),
            None => Ok(()),
        }
    }
}
