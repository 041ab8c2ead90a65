//! Nodes: the Kubernetes side of each VM as typed values ([`NodeInfo`]: readiness and every
//! condition, taints, cordon state, kubelet version, addresses, provider ID), and the calls
//! that read, cordon, uncordon and delete Node objects.

use std::collections::BTreeMap;
use std::fmt;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Node;
use kube::core::ObjectList;
use serde_json::json;

use crate::client::{self, decode, KubeClient};
use crate::error::{Error, Redactor, Result};
use crate::timestamp;

/// The label kubeadm puts on control-plane nodes.
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// Page size of list requests (the API server's default maximum chunk is 500).
pub(crate) const LIST_PAGE: u32 = 500;

/// A Node as the API server reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    /// `metadata.name` (for vkube's nodes, the VM name).
    pub name: String,
    /// `metadata.uid`: a node deleted and registered again gets a new one.
    pub uid: String,
    /// The `Ready` condition (also in [`conditions`](Self::conditions)); `None` until the
    /// kubelet first posts its status.
    pub ready: Option<NodeCondition>,
    /// Every condition, in the API server's order (`MemoryPressure`, `DiskPressure`,
    /// `PIDPressure`, `Ready`, and any a node problem detector adds).
    pub conditions: Vec<NodeCondition>,
    /// `spec.taints`.
    pub taints: Vec<Taint>,
    /// `spec.unschedulable`: cordoned.
    pub unschedulable: bool,
    /// `status.nodeInfo.kubeletVersion`, e.g. `v1.30.4`.
    pub kubelet_version: Option<String>,
    /// `status.addresses`, in order.
    pub addresses: Vec<NodeAddress>,
    /// `spec.providerID`, e.g. `vsphere://4237a4f1-…` once the vSphere CPI initialised the
    /// node.
    #[serde(rename = "providerID")]
    pub provider_id: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.creationTimestamp`: when the kubelet registered the node.
    #[serde(with = "timestamp::optional", default)]
    pub created: Option<SystemTime>,
    /// `metadata.deletionTimestamp` is set: the Node object is being deleted.
    pub deleting: bool,
}

/// Whether a node is Ready, by its `Ready` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Readiness {
    /// `Ready=True`.
    Ready,
    /// `Ready=False`: the kubelet reports a problem (e.g. no CNI yet).
    NotReady,
    /// `Ready=Unknown` (the kubelet stopped posting), or no `Ready` condition yet.
    Unknown,
}

impl NodeInfo {
    /// The node's readiness.
    pub fn readiness(&self) -> Readiness {
        match self.ready.as_ref().map(|c| c.status) {
            Some(ConditionStatus::True) => Readiness::Ready,
            Some(ConditionStatus::False) => Readiness::NotReady,
            Some(ConditionStatus::Unknown) | None => Readiness::Unknown,
        }
    }

    /// `Ready=True`.
    pub fn is_ready(&self) -> bool {
        self.readiness() == Readiness::Ready
    }

    /// The condition of this type, e.g. `DiskPressure`.
    pub fn condition(&self, kind: &str) -> Option<&NodeCondition> {
        self.conditions.iter().find(|c| c.kind == kind)
    }

    /// The first `InternalIP` address.
    pub fn internal_ip(&self) -> Option<&str> {
        self.addresses
            .iter()
            .find(|a| a.kind == "InternalIP")
            .map(|a| a.address.as_str())
    }

    /// Whether kubeadm labelled it a control-plane node.
    pub fn is_control_plane(&self) -> bool {
        self.labels.contains_key(CONTROL_PLANE_LABEL)
    }
}

/// One entry of `status.conditions`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition {
    /// `type`, e.g. `Ready` or `DiskPressure`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    pub status: ConditionStatus,
    /// Machine-readable reason, e.g. `KubeletReady`, `KubeletNotReady`, `NodeStatusUnknown`.
    pub reason: Option<String>,
    /// Human-readable detail, e.g. `container runtime network not ready: …`.
    pub message: Option<String>,
    /// When the status last changed: how long a node has been unhealthy.
    #[serde(with = "timestamp::optional", default)]
    pub last_transition: Option<SystemTime>,
    /// When the kubelet last confirmed it.
    #[serde(with = "timestamp::optional", default)]
    pub last_heartbeat: Option<SystemTime>,
}

/// The status of a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConditionStatus {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown` (and any other value, which the API does not define).
    Unknown,
}

impl ConditionStatus {
    fn parse(text: &str) -> ConditionStatus {
        match text {
            "True" => ConditionStatus::True,
            "False" => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        }
    }
}

impl fmt::Display for ConditionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        })
    }
}

/// One entry of `spec.taints`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    /// e.g. `node.kubernetes.io/unreachable`.
    pub key: String,
    /// Usually empty.
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    pub effect: String,
    /// When a `NoExecute` taint was added.
    #[serde(with = "timestamp::optional", default)]
    pub time_added: Option<SystemTime>,
}

impl fmt::Display for Taint {
    /// kubectl's notation: `key=value:Effect`, `key:Effect`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value.as_deref().filter(|v| !v.is_empty()) {
            Some(value) => write!(f, "{}={value}:{}", self.key, self.effect),
            None => write!(f, "{}:{}", self.key, self.effect),
        }
    }
}

/// One entry of `status.addresses`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeAddress {
    /// `InternalIP`, `ExternalIP`, `Hostname`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The address.
    pub address: String,
}

/// What deleting an object found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Deletion {
    /// The API server accepted the deletion.
    Deleted,
    /// There was no such object (deleting again is not an error).
    AlreadyAbsent,
}

impl From<Node> for NodeInfo {
    fn from(node: Node) -> NodeInfo {
        let metadata = node.metadata;
        let spec = node.spec.unwrap_or_default();
        let status = node.status.unwrap_or_default();
        let conditions: Vec<NodeCondition> = status
            .conditions
            .unwrap_or_default()
            .into_iter()
            .map(|c| NodeCondition {
                kind: c.type_,
                status: ConditionStatus::parse(&c.status),
                reason: c.reason.filter(|r| !r.is_empty()),
                message: c.message.filter(|m| !m.is_empty()),
                last_transition: c
                    .last_transition_time
                    .as_ref()
                    .map(timestamp::from_kubernetes),
                last_heartbeat: c
                    .last_heartbeat_time
                    .as_ref()
                    .map(timestamp::from_kubernetes),
            })
            .collect();
        NodeInfo {
            name: metadata.name.unwrap_or_default(),
            uid: metadata.uid.unwrap_or_default(),
            ready: conditions.iter().find(|c| c.kind == "Ready").cloned(),
            conditions,
            taints: spec
                .taints
                .unwrap_or_default()
                .into_iter()
                .map(|t| Taint {
                    key: t.key,
                    value: t.value.filter(|v| !v.is_empty()),
                    effect: t.effect,
                    time_added: t.time_added.as_ref().map(timestamp::from_kubernetes),
                })
                .collect(),
            unschedulable: spec.unschedulable.unwrap_or(false),
            kubelet_version: status
                .node_info
                .map(|i| i.kubelet_version)
                .filter(|v| !v.is_empty()),
            addresses: status
                .addresses
                .unwrap_or_default()
                .into_iter()
                .map(|a| NodeAddress {
                    kind: a.type_,
                    address: a.address,
                })
                .collect(),
            provider_id: spec.provider_id.filter(|p| !p.is_empty()),
            labels: metadata.labels.unwrap_or_default(),
            created: metadata
                .creation_timestamp
                .as_ref()
                .map(timestamp::from_kubernetes),
            deleting: metadata.deletion_timestamp.is_some(),
        }
    }
}

fn node_path(name: &str) -> Result<String> {
    check_name("node", name)?;
    Ok(format!("/api/v1/nodes/{name}"))
}

/// Object names are DNS subdomains: refusing anything else up front keeps a name from
/// reaching into another path.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let alphanumeric = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let valid = name.len() <= 253
        && name.as_bytes().first().is_some_and(alphanumeric)
        && name.as_bytes().last().is_some_and(alphanumeric)
        && name
            .bytes()
            .all(|b| alphanumeric(&b) || b == b'-' || b == b'.');
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{what} name {name:?} is not a Kubernetes object name"
        )))
    }
}

impl KubeClient {
    pub(crate) async fn list_nodes(&self) -> Result<Vec<NodeInfo>> {
        let mut nodes = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/api/v1/nodes?limit={LIST_PAGE}");
            if let Some(token) = &token {
                path.push_str(&format!("&continue={}", client::query_escape(token)));
            }
            let page: ObjectList<Node> = self.get_json("list of nodes", &path).await?;
            nodes.extend(page.items.into_iter().map(NodeInfo::from));
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                return Ok(nodes);
            }
        }
    }

    pub(crate) async fn get_node(&self, name: &str) -> Result<Option<NodeInfo>> {
        let path = node_path(name)?;
        let node: Option<Node> = self
            .get_json_if_found(&format!("GET of node {name}"), &path)
            .await?;
        Ok(node.map(NodeInfo::from))
    }

    /// Sets or clears `spec.unschedulable` with a JSON merge patch.
    pub(crate) async fn set_unschedulable(&self, name: &str, cordon: bool) -> Result<NodeInfo> {
        let path = node_path(name)?;
        let what = format!(
            "{} of node {name}",
            if cordon { "cordon" } else { "uncordon" }
        );
        // `null` removes the field, as kubectl's uncordon leaves it.
        let value = if cordon { json!(true) } else { json!(null) };
        let request = client::with_json_body(
            &what,
            http::Method::PATCH,
            &path,
            "application/merge-patch+json",
            &json!({"spec": {"unschedulable": value}}),
        )?;
        let answer = self.call(&what, request, &Redactor::default()).await?;
        let node: Node = decode(&what, &answer.body)?;
        Ok(NodeInfo::from(node))
    }

    pub(crate) async fn remove_node(&self, name: &str) -> Result<Deletion> {
        let path = node_path(name)?;
        let what = format!("deletion of node {name}");
        self.delete_object(&what, &path, None).await
    }

    /// `DELETE path` (with a grace period in seconds, for pods).
    pub(crate) async fn delete_object(
        &self,
        what: &str,
        path: &str,
        grace_period_seconds: Option<u64>,
    ) -> Result<Deletion> {
        let mut options = json!({"kind": "DeleteOptions", "apiVersion": "v1"});
        if let Some(seconds) = grace_period_seconds {
            options["gracePeriodSeconds"] = json!(seconds);
        }
        let request = client::with_json_body(
            what,
            http::Method::DELETE,
            path,
            "application/json",
            &options,
        )?;
        let answer = self.exchange(request).await?;
        match answer.status {
            404 => Ok(Deletion::AlreadyAbsent),
            _ if answer.is_success() => Ok(Deletion::Deleted),
            _ => Err(self.failure(what, &answer, &Redactor::default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vkube_test_support::kube_api::fixtures::NODE_LIST;

    fn recorded() -> Vec<NodeInfo> {
        let list: ObjectList<Node> = serde_json::from_str(NODE_LIST).unwrap();
        list.items.into_iter().map(NodeInfo::from).collect()
    }

    fn at(text: &str) -> Option<SystemTime> {
        Some(chrono::DateTime::parse_from_rfc3339(text).unwrap().into())
    }

    #[test]
    fn recorded_nodes_read_as_typed_values() {
        let nodes = recorded();
        let summary: Vec<(&str, Readiness, bool)> = nodes
            .iter()
            .map(|n| (n.name.as_str(), n.readiness(), n.is_control_plane()))
            .collect();
        assert_eq!(
            summary,
            [
                ("demo-cp-0", Readiness::Ready, true),
                ("demo-workers-0", Readiness::Ready, false),
                ("demo-workers-1", Readiness::Unknown, false),
                ("demo-workers-2", Readiness::NotReady, false),
            ]
        );
        let cp = &nodes[0];
        assert_eq!(cp.kubelet_version.as_deref(), Some("v1.30.4"));
        assert_eq!(cp.internal_ip(), Some("10.20.0.11"));
        assert_eq!(
            cp.provider_id.as_deref(),
            Some("vsphere://4237a4f1-6b0e-9c3d-1f2a-5e6d7c8b9a01")
        );
        assert_eq!(
            cp.taints[0].to_string(),
            "node-role.kubernetes.io/control-plane:NoSchedule"
        );
        assert_eq!(cp.conditions.len(), 4);
        assert!(!cp.unschedulable && !cp.deleting);
        assert_eq!(cp.created, at("2024-09-02T08:14:05Z"));

        let lost = &nodes[2];
        let ready = lost.ready.as_ref().unwrap();
        assert_eq!(ready.status, ConditionStatus::Unknown);
        assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));
        assert_eq!(ready.last_transition, at("2024-09-03T09:58:40Z"));
        assert_eq!(
            lost.taints
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>(),
            [
                "node.kubernetes.io/unreachable:NoSchedule",
                "node.kubernetes.io/unreachable:NoExecute"
            ]
        );
        assert_eq!(lost.taints[1].time_added, at("2024-09-03T09:58:45Z"));

        let joining = &nodes[3];
        let ready = joining.ready.as_ref().unwrap();
        assert_eq!(ready.reason.as_deref(), Some("KubeletNotReady"));
        assert!(ready
            .message
            .as_deref()
            .unwrap()
            .contains("cni plugin not initialized"));
        assert_eq!(
            joining.condition("DiskPressure").unwrap().status,
            ConditionStatus::False
        );
    }

    #[test]
    fn node_info_serializes_with_api_field_names_and_rfc_3339_times() {
        let node = &recorded()[2];
        let json = serde_json::to_value(node).unwrap();
        assert_eq!(json["ready"]["type"], "Ready");
        assert_eq!(json["ready"]["status"], "Unknown");
        assert_eq!(json["ready"]["lastTransition"], "2024-09-03T09:58:40Z");
        assert_eq!(
            json["providerID"],
            "vsphere://4237a4f1-6b0e-9c3d-1f2a-5e6d7c8b9a03"
        );
        assert_eq!(json["kubeletVersion"], "v1.30.4");
        let back: NodeInfo = serde_json::from_value(json).unwrap();
        assert_eq!(&back, node);
    }

    #[test]
    fn a_node_without_status_is_unknown() {
        let node = NodeInfo::from(Node::default());
        assert_eq!(node.readiness(), Readiness::Unknown);
        assert!(node.kubelet_version.is_none() && node.provider_id.is_none());
    }

    #[test]
    fn names_that_are_not_object_names_are_refused() {
        for name in ["", "a/b", "W-1", "a?b", "../x", "..", "-a"] {
            assert!(node_path(name).is_err(), "{name:?}");
        }
        assert_eq!(node_path("demo-cp-0").unwrap(), "/api/v1/nodes/demo-cp-0");
    }
}
