//! When the planner may change etcd's membership: removing a member must
//! leave a healthy quorum (and never the last member), adding one (a
//! control-plane node joining) must not lose the quorum while it starts.
//! The same arithmetic as `vkube-kube`'s guard at removal time, decided here
//! on the pass's [`EtcdView`] so that the plan holds, naming the node,
//! instead of failing a step.

use super::observed::EtcdView;

/// The quorum of `voters` members: a majority.
pub fn quorum_of(voters: usize) -> usize {
    voters / 2 + 1
}

impl EtcdView {
    /// Whether `node` is a member.
    pub fn is_member(&self, node: &str) -> bool {
        self.members.iter().any(|m| m == node)
    }

    /// Whether `node` is a healthy member.
    pub fn is_healthy_member(&self, node: &str) -> bool {
        self.is_member(node) && self.healthy.contains(node)
    }

    fn healthy_count(&self) -> usize {
        self.members
            .iter()
            .filter(|m| self.healthy.contains(*m))
            .count()
    }

    /// ` (not healthy: a, b)` for the members other than `except`, or nothing.
    fn unhealthy_note(&self, except: Option<&str>) -> String {
        let unhealthy: Vec<&str> = self
            .members
            .iter()
            .map(String::as_str)
            .filter(|m| !self.healthy.contains(*m) && Some(*m) != except)
            .collect();
        if unhealthy.is_empty() {
            String::new()
        } else {
            format!(" (not healthy: {})", unhealthy.join(", "))
        }
    }

    /// `Ok` when removing member `node` leaves a healthy quorum; else why not.
    pub(crate) fn check_removal(&self, node: &str) -> Result<(), String> {
        let members = self.members.len();
        if members <= 1 {
            return Err(format!(
                "`{node}` is the last etcd member: removing it would lose every object of the cluster"
            ));
        }
        let healthy = self.healthy_count();
        if healthy < quorum_of(members) {
            return Err(format!(
                "only {healthy} of the {members} etcd members are healthy, below the quorum of {}: etcd cannot remove `{node}`{}",
                quorum_of(members),
                self.unhealthy_note(None)
            ));
        }
        let left = members - 1;
        let left_healthy = healthy - usize::from(self.healthy.contains(node));
        if left_healthy < quorum_of(left) {
            return Err(format!(
                "removing etcd member `{node}` would leave {left_healthy} healthy of {left}, below their quorum of {}{}",
                quorum_of(left),
                self.unhealthy_note(Some(node))
            ));
        }
        Ok(())
    }

    /// `Ok` when a new member (`node`, joining) can be added: every member
    /// is healthy, or the healthy ones stay a quorum of the grown cluster
    /// while the new one starts. Members without a VM should be removed
    /// first.
    pub(crate) fn check_addition(&self, node: &str) -> Result<(), String> {
        let members = self.members.len();
        let healthy = self.healthy_count();
        if healthy == members || healthy >= quorum_of(members + 1) {
            return Ok(());
        }
        Err(format!(
            "adding `{node}` would make {} etcd members with {healthy} healthy, below the quorum of {}{}: heal or replace the unhealthy members first",
            members + 1,
            quorum_of(members + 1),
            self.unhealthy_note(None)
        ))
    }

    /// The view once `node` is removed.
    pub(crate) fn remove(&mut self, node: &str) {
        self.members.retain(|m| m != node);
        self.healthy.remove(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(members: &[&str], healthy: &[&str]) -> EtcdView {
        EtcdView {
            members: members.iter().map(|m| m.to_string()).collect(),
            healthy: healthy.iter().map(|m| m.to_string()).collect(),
        }
    }

    #[test]
    fn quorum_is_a_majority() {
        assert_eq!([1, 2, 3, 4, 5].map(quorum_of), [1, 2, 2, 3, 3]);
    }

    #[test]
    fn removal_keeps_a_healthy_quorum_and_never_the_last_member() {
        let all = view(&["a", "b", "c"], &["a", "b", "c"]);
        assert!(all.check_removal("b").is_ok());
        let one_down = view(&["a", "b", "c"], &["a", "b"]);
        assert!(one_down.check_removal("c").is_ok(), "the dead one may go");
        assert_eq!(
            one_down.check_removal("a").unwrap_err(),
            "removing etcd member `a` would leave 1 healthy of 2, below their quorum of 2 (not healthy: c)"
        );
        let two_down = view(&["a", "b", "c"], &["a"]);
        assert_eq!(
            two_down.check_removal("b").unwrap_err(),
            "only 1 of the 3 etcd members are healthy, below the quorum of 2: etcd cannot remove `b` (not healthy: b, c)"
        );
        let last = view(&["a"], &["a"]);
        assert!(last
            .check_removal("a")
            .unwrap_err()
            .contains("last etcd member"));
        let pair = view(&["a", "b"], &["a", "b"]);
        assert!(
            pair.check_removal("a").is_ok(),
            "a one-node control plane rolls"
        );
    }

    #[test]
    fn addition_needs_all_healthy_or_a_quorum_of_the_grown_cluster() {
        assert!(view(&["a"], &["a"]).check_addition("n").is_ok());
        assert!(view(&["a", "b", "c"], &["a", "b", "c"])
            .check_addition("n")
            .is_ok());
        assert!(view(&["a", "b"], &["a", "b"]).check_addition("n").is_ok());
        assert!(view(&["a", "b", "c", "d"], &["a", "b", "c"])
            .check_addition("n")
            .is_ok());
        assert_eq!(
            view(&["a", "b", "c"], &["a", "b"]).check_addition("n").unwrap_err(),
            "adding `n` would make 4 etcd members with 2 healthy, below the quorum of 3 (not healthy: c): heal or replace the unhealthy members first"
        );
    }
}
