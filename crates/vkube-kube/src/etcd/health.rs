//! The health of every member, each asked at its own client URL: `GET /health` (etcd's
//! verdict: a leader, and a linearizable read served) and `POST /v3/maintenance/status`
//! (version, leader, Raft indexes, database size, alarms).

use std::fmt;

use serde::Deserialize;

use super::members::{uint64, EtcdMember, MemberId, WireHeader};

/// What one member reports about itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// etcd's version, e.g. `3.5.15`.
    pub version: String,
    /// The leader it follows; `None` while it knows none.
    pub leader: Option<MemberId>,
    /// Raft term.
    pub raft_term: u64,
    /// Raft index: members far behind the leader are still catching up.
    pub raft_index: u64,
    /// Backend database size in bytes.
    pub db_size: u64,
    /// Alarms and errors it reports (e.g. `NOSPACE`).
    pub errors: Vec<String>,
}

/// A member's health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum MemberState {
    /// `/health` is true and the member reports no error.
    Healthy {
        /// Its status.
        status: MemberStatus,
    },
    /// It answers, but is not healthy (no leader, alarms, a failed read).
    Unhealthy {
        /// Why, e.g. `/health: false (RAFT NO LEADER)`.
        reason: String,
        /// Its status, when it gave one.
        status: Option<MemberStatus>,
    },
    /// None of its client URLs answered.
    Unreachable {
        /// The last failure, one line.
        reason: String,
    },
    /// Added to the cluster but never started (no client URL yet).
    NotStarted,
}

impl MemberState {
    /// Whether the member is healthy.
    pub fn is_healthy(&self) -> bool {
        matches!(self, MemberState::Healthy { .. })
    }

    /// Its status, when it gave one.
    pub fn status(&self) -> Option<&MemberStatus> {
        match self {
            MemberState::Healthy { status } => Some(status),
            MemberState::Unhealthy { status, .. } => status.as_ref(),
            _ => None,
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemberState::Healthy { status } => write!(f, "healthy (etcd {})", status.version),
            MemberState::Unhealthy { reason, .. } => write!(f, "unhealthy: {reason}"),
            MemberState::Unreachable { reason } => write!(f, "unreachable: {reason}"),
            MemberState::NotStarted => f.write_str("not started"),
        }
    }
}

/// One member and its health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemberHealth {
    /// The member.
    pub member: EtcdMember,
    /// The client URL that answered.
    pub endpoint: Option<String>,
    /// Its health.
    pub state: MemberState,
}

/// Every member's health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterHealth {
    /// The cluster's ID.
    pub cluster_id: MemberId,
    /// The members, by name.
    pub members: Vec<MemberHealth>,
}

impl ClusterHealth {
    /// Whether every member is healthy.
    pub fn is_healthy(&self) -> bool {
        self.members.iter().all(|m| m.state.is_healthy())
    }

    /// The members that are not healthy.
    pub fn unhealthy(&self) -> impl Iterator<Item = &MemberHealth> {
        self.members.iter().filter(|m| !m.state.is_healthy())
    }

    /// The member with this ID.
    pub fn member(&self, id: MemberId) -> Option<&MemberHealth> {
        self.members.iter().find(|m| m.member.id == id)
    }

    /// The member named `name` (kubeadm: the node name).
    pub fn member_named(&self, name: &str) -> Option<&MemberHealth> {
        self.members.iter().find(|m| m.member.name == name)
    }

    /// The leader the healthy members follow, if they agree on one.
    pub fn leader(&self) -> Option<&MemberHealth> {
        let mut leaders = self
            .members
            .iter()
            .filter(|m| m.state.is_healthy())
            .filter_map(|m| m.state.status().and_then(|s| s.leader));
        let first = leaders.next()?;
        leaders.all(|l| l == first).then(|| self.member(first))?
    }
}

/// `StatusResponse` (only what vkube reads).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct WireStatus {
    #[allow(dead_code)]
    header: WireHeader,
    version: String,
    #[serde(deserialize_with = "uint64")]
    db_size: u64,
    #[serde(deserialize_with = "uint64")]
    leader: u64,
    #[serde(deserialize_with = "uint64")]
    raft_index: u64,
    #[serde(deserialize_with = "uint64")]
    raft_term: u64,
    errors: Vec<String>,
}

impl From<WireStatus> for MemberStatus {
    fn from(wire: WireStatus) -> MemberStatus {
        MemberStatus {
            version: wire.version,
            leader: (wire.leader != 0).then_some(MemberId(wire.leader)),
            raft_term: wire.raft_term,
            raft_index: wire.raft_index,
            db_size: wire.db_size,
            errors: wire.errors,
        }
    }
}

/// `GET /health`: `{"health":"true"}`, or `"false"` with a `reason` (3.5).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireHealth {
    pub(crate) health: String,
    pub(crate) reason: String,
}

/// The verdict on a member from its `/health` answer and its status.
pub(crate) fn judge(
    health_status: u16,
    health: &WireHealth,
    status: Result<MemberStatus, String>,
) -> MemberState {
    let healthy = health_status == 200 && health.health == "true";
    match (healthy, status) {
        (true, Ok(status)) if status.errors.is_empty() => MemberState::Healthy { status },
        (true, Ok(status)) => MemberState::Unhealthy {
            reason: format!("it reports {}", status.errors.join(", ")),
            status: Some(status),
        },
        (true, Err(reason)) => MemberState::Unhealthy {
            reason: format!("its status is not readable: {reason}"),
            status: None,
        },
        (false, status) => {
            let detail = match health.reason.as_str() {
                "" => String::new(),
                reason => format!(" ({reason})"),
            };
            MemberState::Unhealthy {
                reason: format!(
                    "/health answered {health_status} {:?}{detail}",
                    health.health
                ),
                status: status.ok(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `POST /v3/maintenance/status` of etcd 3.4.23.
    const STATUS: &str = r#"{"header":{"cluster_id":"14398420247917935680","member_id":"1654818993570247861","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"20480","leader":"1654818993570247861","raftIndex":"5","raftTerm":"2","raftAppliedIndex":"5","dbSizeInUse":"20480"}"#;

    fn status() -> MemberStatus {
        serde_json::from_str::<WireStatus>(STATUS).unwrap().into()
    }

    #[test]
    fn the_gateways_status_reads_as_typed_values() {
        let status = status();
        assert_eq!(status.version, "3.4.23");
        assert_eq!(status.leader, Some(MemberId(1654818993570247861)));
        assert_eq!(
            (status.raft_term, status.raft_index, status.db_size),
            (2, 5, 20480)
        );
        assert!(status.errors.is_empty());
    }

    #[test]
    fn health_needs_a_true_health_answer_and_no_alarm() {
        let ok = WireHealth {
            health: "true".into(),
            reason: String::new(),
        };
        assert!(judge(200, &ok, Ok(status())).is_healthy());
        let alarmed = MemberStatus {
            errors: vec!["memberID:1654818993570247861 alarm:NOSPACE ".into()],
            ..status()
        };
        let state = judge(200, &ok, Ok(alarmed));
        assert!(state.to_string().contains("NOSPACE"), "{state}");
        let no_leader = WireHealth {
            health: "false".into(),
            reason: "RAFT NO LEADER".into(),
        };
        assert_eq!(
            judge(503, &no_leader, Err("timeout".into())).to_string(),
            "unhealthy: /health answered 503 \"false\" (RAFT NO LEADER)"
        );
    }
}
