//! Whether one node is unhealthy by its group's [`HealthCheck`], and why.
//!
//! Judged only on what this pass read: the caller asks only when the API
//! server answered. A node that is not powered on is never unhealthy here
//! (powering it on comes first); a node whose Node object is gone is
//! replaced anyway (see the planner's stale nodes).

use crate::cluster::duration::format_duration;
use crate::cluster::health_check::HealthCheck;

use super::observed::{KubeNode, ObservedNode, PowerState};

/// Why `node` is unhealthy, e.g. `Ready=Unknown for 7m, longer than 5m`;
/// `None` when it is not (or cannot be told).
pub(super) fn unhealthy(node: &ObservedNode, check: &HealthCheck) -> Option<String> {
    if node.power_state != PowerState::PoweredOn {
        return None;
    }
    match &node.kube {
        KubeNode::NeverRegistered => {
            let (limit, age) = (check.node_startup_timeout()?, node.powered_on_for?);
            (age > limit).then(|| {
                format!(
                    "not registered {} after power-on, longer than nodeStartupTimeout {}",
                    format_duration(age),
                    format_duration(limit)
                )
            })
        }
        KubeNode::Registered(registered) => {
            check.unhealthy_conditions().iter().find_map(|condition| {
                let (status, held_for) = registered.condition(condition.kind())?;
                (status == condition.status() && held_for > condition.timeout()).then(|| {
                    format!(
                        "{}={status} for {}, longer than {}",
                        condition.kind(),
                        format_duration(held_for),
                        format_duration(condition.timeout())
                    )
                })
            })
        }
        KubeNode::Unreachable { .. } | KubeNode::Deregistered => None,
    }
}
