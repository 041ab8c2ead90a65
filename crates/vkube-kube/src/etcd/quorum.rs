//! When removing an etcd member is safe: never the last member, and never when the members
//! left would not have a healthy quorum — or when the cluster has none now, so it cannot
//! commit the change. Learners do not vote and do not count. Pure: decided on a
//! [`ClusterHealth`] that was just read.

use super::error::EtcdError;
use super::health::{ClusterHealth, MemberHealth};
use super::members::MemberId;

/// The quorum of `voters` voting members: a majority.
pub fn quorum_of(voters: usize) -> usize {
    voters / 2 + 1
}

/// `Ok` when removing `target` leaves a cluster whose healthy voting members are a quorum of
/// it; else [`EtcdError::RemovalRefused`] naming the member, with the unhealthy members.
pub fn check_removal(health: &ClusterHealth, target: MemberId) -> Result<(), EtcdError> {
    let Some(removed) = health.member(target) else {
        return Err(EtcdError::NoSuchMember {
            member: target.to_string(),
        });
    };
    let refuse = |reason: String| EtcdError::RemovalRefused {
        member: removed.member.to_string(),
        reason,
    };
    if health.members.len() == 1 {
        return Err(refuse(
            "it is the last member: etcd, and every object of the cluster, would be gone".into(),
        ));
    }
    let voters: Vec<&MemberHealth> = health
        .members
        .iter()
        .filter(|m| !m.member.is_learner)
        .collect();
    let healthy =
        |members: &[&MemberHealth]| members.iter().filter(|m| m.state.is_healthy()).count();
    let now_healthy = healthy(&voters);
    if now_healthy < quorum_of(voters.len()) {
        return Err(refuse(format!(
            "only {now_healthy} of the {} voting members are healthy, below the quorum of {}: \
             etcd cannot commit a membership change{}",
            voters.len(),
            quorum_of(voters.len()),
            unhealthy_list(health, None)
        )));
    }
    if removed.member.is_learner {
        return Ok(());
    }
    let left: Vec<&MemberHealth> = voters
        .iter()
        .copied()
        .filter(|m| m.member.id != target)
        .collect();
    let left_healthy = healthy(&left);
    if left_healthy < quorum_of(left.len()) {
        return Err(refuse(format!(
            "the {} voting members left would have {left_healthy} healthy, below their quorum \
             of {}{}",
            left.len(),
            quorum_of(left.len()),
            unhealthy_list(health, Some(target))
        )));
    }
    Ok(())
}

/// ` (unhealthy: a (id): reason; …)` for the members other than `except`, or nothing.
fn unhealthy_list(health: &ClusterHealth, except: Option<MemberId>) -> String {
    let unhealthy: Vec<String> = health
        .unhealthy()
        .filter(|m| Some(m.member.id) != except)
        .map(|m| format!("{} {}", m.member, m.state))
        .collect();
    if unhealthy.is_empty() {
        String::new()
    } else {
        format!(" (not healthy: {})", unhealthy.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::super::health::{MemberState, MemberStatus};
    use super::super::members::EtcdMember;
    use super::*;

    fn member(id: u64, name: &str, healthy: bool, learner: bool) -> MemberHealth {
        let status = MemberStatus {
            version: "3.5.15".into(),
            leader: Some(MemberId(1)),
            raft_term: 2,
            raft_index: 10,
            db_size: 20480,
            errors: Vec::new(),
        };
        MemberHealth {
            member: EtcdMember {
                id: MemberId(id),
                name: name.into(),
                peer_urls: vec![format!("https://10.20.0.1{id}:2380")],
                client_urls: vec![format!("https://10.20.0.1{id}:2379")],
                is_learner: learner,
            },
            endpoint: Some(format!("https://10.20.0.1{id}:2379")),
            state: if healthy {
                MemberState::Healthy { status }
            } else {
                MemberState::Unreachable {
                    reason: "connection refused".into(),
                }
            },
        }
    }

    fn cluster(members: Vec<MemberHealth>) -> ClusterHealth {
        ClusterHealth {
            cluster_id: MemberId(99),
            members,
        }
    }

    #[test]
    fn quorum_is_a_majority() {
        assert_eq!([1, 2, 3, 4, 5].map(quorum_of), [1, 2, 2, 3, 3]);
    }

    #[test]
    fn removing_one_of_three_healthy_members_is_safe() {
        let health = cluster(vec![
            member(1, "cp-0", true, false),
            member(2, "cp-1", true, false),
            member(3, "cp-2", true, false),
        ]);
        assert!(check_removal(&health, MemberId(2)).is_ok());
    }

    #[test]
    fn removing_a_dead_member_is_safe_removing_a_healthy_one_beside_it_is_not() {
        let health = cluster(vec![
            member(1, "cp-0", true, false),
            member(2, "cp-1", true, false),
            member(3, "cp-2", false, false),
        ]);
        assert!(check_removal(&health, MemberId(3)).is_ok());
        let err = check_removal(&health, MemberId(1)).unwrap_err().to_string();
        assert_eq!(
            err,
            "refusing to remove etcd member cp-0 (1): the 2 voting members left would have 1 \
             healthy, below their quorum of 2 (not healthy: cp-2 (3) unreachable: connection \
             refused)"
        );
    }

    #[test]
    fn the_last_member_is_never_removed() {
        let health = cluster(vec![member(1, "cp-0", true, false)]);
        let err = check_removal(&health, MemberId(1)).unwrap_err().to_string();
        assert!(
            err.starts_with("refusing to remove etcd member cp-0 (1): it is the last member"),
            "{err}"
        );
    }

    #[test]
    fn a_cluster_without_quorum_changes_no_membership() {
        let health = cluster(vec![
            member(1, "cp-0", true, false),
            member(2, "cp-1", false, false),
            member(3, "cp-2", false, false),
        ]);
        let err = check_removal(&health, MemberId(2)).unwrap_err().to_string();
        assert!(
            err.contains("only 1 of the 3 voting members are healthy"),
            "{err}"
        );
        assert!(
            err.contains("cp-1 (2) unreachable") && err.contains("cp-2 (3) unreachable"),
            "{err}"
        );
    }

    #[test]
    fn learners_do_not_vote() {
        let health = cluster(vec![
            member(1, "cp-0", true, false),
            member(2, "cp-1", true, false),
            member(4, "cp-3", false, true),
        ]);
        assert!(
            check_removal(&health, MemberId(4)).is_ok(),
            "a learner may always go"
        );
        assert!(
            check_removal(&health, MemberId(2)).is_ok(),
            "one healthy voter is quorum of one"
        );
        let err = check_removal(&health, MemberId(7)).unwrap_err();
        assert!(matches!(err, EtcdError::NoSuchMember { .. }), "{err:?}");
    }
}
