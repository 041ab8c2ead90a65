//! etcd members as typed values, and the gateway's JSON for them: 64-bit IDs arrive as
//! decimal strings (protobuf's JSON mapping of `uint64`) and are shown in hex, as etcdctl
//! and etcd's logs show them.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A member's (or the cluster's) 64-bit ID.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub u64);

impl fmt::Display for MemberId {
    /// Hex, as `etcdctl member list` prints it: `8e9e05c52164694d`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberId({self})")
    }
}

impl serde::Serialize for MemberId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EtcdMember {
    /// Its ID.
    pub id: MemberId,
    /// `--name`; kubeadm names members after their node. Empty for a member added but never
    /// started.
    pub name: String,
    /// Where the other members reach it.
    pub peer_urls: Vec<String>,
    /// Where clients reach it, e.g. `https://10.20.0.11:2379`; empty until it started.
    pub client_urls: Vec<String>,
    /// A learner (non-voting) member.
    pub is_learner: bool,
}

impl EtcdMember {
    /// Whether it ever started (a started member publishes its name and client URLs).
    pub fn started(&self) -> bool {
        !self.name.is_empty()
    }
}

impl fmt::Display for EtcdMember {
    /// `demo-cp-1 (8e9e05c52164694d)`, or the peer URL for a member never started.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.started(), self.peer_urls.first()) {
            (true, _) => write!(f, "{} ({})", self.name, self.id),
            (false, Some(peer)) => write!(f, "unstarted member at {peer} ({})", self.id),
            (false, None) => write!(f, "unstarted member ({})", self.id),
        }
    }
}

/// The members, as one member answered `member list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberList {
    /// The cluster's ID.
    pub cluster_id: MemberId,
    /// The members, by name.
    pub members: Vec<EtcdMember>,
    /// The endpoint that answered.
    pub answered_by: String,
}

impl MemberList {
    /// The member named `name` (kubeadm: the node name).
    pub fn named(&self, name: &str) -> Option<&EtcdMember> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// A `uint64` in protobuf's JSON mapping: a decimal string (numbers accepted as well).
pub(crate) fn uint64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Wire {
        Text(String),
        Number(u64),
    }
    match Wire::deserialize(deserializer)? {
        Wire::Number(n) => Ok(n),
        Wire::Text(text) => text.parse().map_err(serde::de::Error::custom),
    }
}

/// `ResponseHeader` (only what vkube reads).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireHeader {
    #[serde(deserialize_with = "uint64")]
    pub(crate) cluster_id: u64,
    #[serde(deserialize_with = "uint64")]
    pub(crate) member_id: u64,
}

/// `Member` (fields left out of the JSON when at their default, as protobuf does).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct WireMember {
    #[serde(rename = "ID", deserialize_with = "uint64")]
    pub(crate) id: u64,
    pub(crate) name: String,
    #[serde(rename = "peerURLs")]
    pub(crate) peer_urls: Vec<String>,
    #[serde(rename = "clientURLs")]
    pub(crate) client_urls: Vec<String>,
    pub(crate) is_learner: bool,
}

impl From<WireMember> for EtcdMember {
    fn from(wire: WireMember) -> EtcdMember {
        EtcdMember {
            id: MemberId(wire.id),
            name: wire.name,
            peer_urls: wire.peer_urls,
            client_urls: wire.client_urls,
            is_learner: wire.is_learner,
        }
    }
}

/// `MemberListResponse` and `MemberRemoveResponse`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireMembers {
    pub(crate) header: WireHeader,
    pub(crate) members: Vec<WireMember>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `POST /v3/cluster/member/list` of etcd 3.4.23 with a member added but not started.
    const MEMBER_LIST: &str = r#"{"header":{"cluster_id":"14398420247917935680","member_id":"1654818993570247861","raft_term":"2"},"members":[{"ID":"1654818993570247861","name":"m1","peerURLs":["https://127.0.0.1:23801"],"clientURLs":["https://127.0.0.1:23791"]},{"ID":"3531339299809385358","peerURLs":["https://127.0.0.1:23802"],"isLearner":true}]}"#;

    #[test]
    fn the_gateways_member_list_reads_as_typed_members() {
        let wire: WireMembers = serde_json::from_str(MEMBER_LIST).unwrap();
        assert_eq!(wire.header.cluster_id, 14398420247917935680);
        let members: Vec<EtcdMember> = wire.members.into_iter().map(EtcdMember::from).collect();
        assert_eq!(members[0].id, MemberId(1654818993570247861));
        assert_eq!(members[0].to_string(), "m1 (16f7191b6752f4b5)");
        assert!(members[0].started() && !members[0].is_learner);
        assert_eq!(members[1].client_urls, Vec::<String>::new());
        assert!(members[1].is_learner && !members[1].started());
        assert_eq!(
            members[1].to_string(),
            "unstarted member at https://127.0.0.1:23802 (3101d6622283db8e)"
        );
        assert_eq!(
            serde_json::to_value(members[0].id).unwrap(),
            "16f7191b6752f4b5"
        );
    }
}
