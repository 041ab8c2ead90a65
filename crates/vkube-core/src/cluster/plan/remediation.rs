//! Which of a group's unhealthy nodes are replaced this pass: none while
//! the API server is unreachable (health cannot be told) or more are
//! unhealthy than `maxUnhealthy` allows; every one in a worker pool; in the
//! control plane one at a time, and only while it has exactly its replicas.

use super::health::unhealthy;
use super::observed::ObservedNode;
use super::steps::HoldReason;
use super::Planner;
use crate::cluster::spec::{GroupRole, NodeGroup};

impl Planner<'_> {
    /// The nodes of `group` to replace now for their health, with why;
    /// holds record why other unhealthy nodes wait.
    pub(super) fn remediation<'n>(
        &mut self,
        group: &NodeGroup<'_>,
        members: &[&'n ObservedNode],
    ) -> Vec<(&'n ObservedNode, String)> {
        let Some(check) = group.health_check() else {
            return Vec::new();
        };
        if !self.api_reachable {
            return Vec::new();
        }
        let found: Vec<(&ObservedNode, String)> = members
            .iter()
            .filter_map(|node| unhealthy(node, check).map(|why| (*node, why)))
            .collect();
        if found.is_empty() {
            return found;
        }
        let total = members.len();
        let allowed = check.max_unhealthy().allowed(total);
        if found.len() > allowed {
            let reason = HoldReason::MaxUnhealthy {
                unhealthy: found.iter().map(|(n, _)| n.name.clone()).collect(),
                total,
                max_unhealthy: check.max_unhealthy().to_string(),
                allowed,
            };
            self.hold(group.name(), None, reason);
            return Vec::new();
        }
        if group.role() == GroupRole::Worker {
            return found;
        }
        let nodes = total as u32;
        if nodes != group.replicas() {
            let reason = HoldReason::ControlPlaneChanging {
                nodes,
                replicas: group.replicas(),
            };
            for (node, _) in &found {
                self.hold(group.name(), Some(&node.name), reason.clone());
            }
            return Vec::new();
        }
        let mut found = found.into_iter();
        let first = found.next().expect("not empty");
        for (node, _) in found {
            let reason = HoldReason::WaitingForRemoval {
                node: first.0.name.clone(),
            };
            self.hold(group.name(), Some(&node.name), reason);
        }
        vec![first]
    }
}
