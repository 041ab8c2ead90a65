//! An in-memory Kubernetes cluster for the runtime's tests: Node objects
//! with a Ready condition the test moves, cordon and drain (a drain a
//! test blocks fails like a PodDisruptionBudget that refuses evictions),
//! Node deletion, API reachability, and etcd members with health and a
//! quorum-guarded removal. Every call is recorded in order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use vkube_kube::etcd::{
    check_removal, ClusterHealth, EtcdAccess, EtcdError, EtcdMember, MemberHealth, MemberId,
    MemberList, MemberState, MemberStatus, Removal,
};
use vkube_kube::{
    ApiHealth, AppliedObject, BlockedEviction, ClusterAccess, ClusterApi, ConditionStatus,
    Deletion, DrainOptions, DrainReport, NodeCondition, NodeInfo, PodRef, ServerVersion,
};

use crate::kube::{ClusterConnector, EtcdMembers};

#[derive(Debug, Default)]
struct State {
    reachable: bool,
    nodes: BTreeMap<String, NodeInfo>,
    /// Nodes whose drain a PodDisruptionBudget blocks (by budget name).
    blocked: BTreeMap<String, String>,
    /// etcd members by node name, and whether each is healthy.
    members: BTreeMap<String, (MemberId, bool)>,
    next_member: u64,
    /// Every call, as `verb node`.
    calls: Vec<String>,
}

/// The fake cluster; cheap to clone (shared state).
#[derive(Debug, Clone, Default)]
pub struct FakeCluster {
    state: Arc<Mutex<State>>,
}

impl FakeCluster {
    /// A cluster whose API answers, with no nodes yet.
    pub fn new() -> FakeCluster {
        let cluster = FakeCluster::default();
        cluster.lock().reachable = true;
        cluster
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make the API (and etcd) answer or not.
    pub fn set_reachable(&self, reachable: bool) {
        self.lock().reachable = reachable;
    }

    /// Register `node` (the kubelet started) with Ready `ready`, since `at`;
    /// a control-plane node also joins etcd as a healthy member.
    pub fn register(&self, node: &str, ready: ConditionStatus, at: SystemTime, etcd: bool) {
        let mut state = self.lock();
        state
            .nodes
            .insert(node.to_owned(), node_info(node, ready, at));
        if etcd && !state.members.contains_key(node) {
            state.next_member += 1;
            let id = MemberId(0x1000 + state.next_member);
            state.members.insert(node.to_owned(), (id, true));
        }
    }

    /// Set `node`'s Ready condition, changed at `at`.
    pub fn set_ready(&self, node: &str, ready: ConditionStatus, at: SystemTime) {
        let mut state = self.lock();
        if let Some(info) = state.nodes.get_mut(node) {
            *info = NodeInfo {
                unschedulable: info.unschedulable,
                ..node_info(node, ready, at)
            };
            state.calls.push(format!("{} {node}", ready_word(ready)));
        }
    }

    /// Whether `node` is registered, Ready and schedulable.
    pub fn is_serving(&self, node: &str) -> bool {
        self.lock()
            .nodes
            .get(node)
            .is_some_and(|n| n.is_ready() && !n.unschedulable)
    }

    /// Make draining `node` fail as if PodDisruptionBudget `budget` refused.
    pub fn block_drain(&self, node: &str, budget: &str) {
        self.lock()
            .blocked
            .insert(node.to_owned(), budget.to_owned());
    }

    /// Mark `node`'s etcd member healthy or not.
    pub fn set_member_healthy(&self, node: &str, healthy: bool) {
        if let Some(member) = self.lock().members.get_mut(node) {
            member.1 = healthy;
        }
    }

    /// Node objects, by name.
    pub fn node_names(&self) -> Vec<String> {
        self.lock().nodes.keys().cloned().collect()
    }

    /// etcd members, by node name.
    pub fn member_names(&self) -> Vec<String> {
        self.lock().members.keys().cloned().collect()
    }

    /// Every call so far, as `verb node`.
    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    fn call(&self, what: String) -> vkube_kube::Result<MutexGuard<'_, State>> {
        let mut state = self.lock();
        if !state.reachable {
            return Err(vkube_kube::Error::Unreachable {
                endpoint: "https://10.20.0.5:6443".into(),
                reason: "connection refused (fake)".into(),
            });
        }
        state.calls.push(what);
        Ok(state)
    }

    fn etcd_call(&self, what: String) -> Result<MutexGuard<'_, State>, EtcdError> {
        let mut state = self.lock();
        if !state.reachable {
            return Err(EtcdError::Unreachable {
                endpoint: "https://10.20.0.11:2379".into(),
                reason: "connection refused (fake)".into(),
            });
        }
        state.calls.push(what);
        Ok(state)
    }
}

impl FakeCluster {
    /// `kubectl cordon` / `uncordon`.
    fn set_unschedulable(
        &self,
        verb: &str,
        name: &str,
        unschedulable: bool,
    ) -> vkube_kube::Result<NodeInfo> {
        let mut state = self.call(format!("{verb} {name}"))?;
        let node = state
            .nodes
            .get_mut(name)
            .ok_or_else(|| no_such_node(name))?;
        node.unschedulable = unschedulable;
        Ok(node.clone())
    }
}

/// The API server's 404 for a Node.
/// How the test's calls list records a readiness change.
fn ready_word(ready: ConditionStatus) -> &'static str {
    match ready {
        ConditionStatus::True => "ready",
        _ => "not-ready",
    }
}

fn no_such_node(name: &str) -> vkube_kube::Error {
    vkube_kube::Error::NotFound {
        what: format!("node `{name}`"),
        message: "nodes not found (fake)".into(),
    }
}

fn node_info(node: &str, ready: ConditionStatus, at: SystemTime) -> NodeInfo {
    let condition = NodeCondition {
        kind: "Ready".into(),
        status: ready,
        reason: None,
        message: None,
        last_transition: Some(at),
        last_heartbeat: Some(at),
    };
    NodeInfo {
        name: node.to_owned(),
        uid: format!("uid-{node}"),
        ready: Some(condition.clone()),
        conditions: vec![condition],
        taints: Vec::new(),
        unschedulable: false,
        kubelet_version: Some("v1.30.2".into()),
        addresses: Vec::new(),
        provider_id: None,
        labels: BTreeMap::new(),
        created: Some(at),
        deleting: false,
    }
}

fn health_of(state: &State) -> ClusterHealth {
    let leader = state
        .members
        .values()
        .find(|(_, ok)| *ok)
        .map(|(id, _)| *id);
    ClusterHealth {
        cluster_id: MemberId(1),
        members: state
            .members
            .iter()
            .map(|(name, (id, healthy))| MemberHealth {
                member: member(name, *id),
                endpoint: Some(format!("https://{name}:2379")),
                state: if *healthy {
                    MemberState::Healthy {
                        status: MemberStatus {
                            version: "3.5.15".into(),
                            leader,
                            raft_term: 2,
                            raft_index: 100,
                            db_size: 1 << 20,
                            errors: Vec::new(),
                        },
                    }
                } else {
                    MemberState::Unreachable {
                        reason: "connection refused (fake)".into(),
                    }
                },
            })
            .collect(),
    }
}

fn member(name: &str, id: MemberId) -> EtcdMember {
    EtcdMember {
        id,
        name: name.to_owned(),
        peer_urls: vec![format!("https://{name}:2380")],
        client_urls: vec![format!("https://{name}:2379")],
        is_learner: false,
    }
}

#[async_trait]
impl ClusterApi for FakeCluster {
    async fn version(&self) -> vkube_kube::Result<ServerVersion> {
        drop(self.call("version".into())?);
        Ok(ServerVersion {
            major: "1".into(),
            minor: "30".into(),
            git_version: "v1.30.2".into(),
            platform: "linux/amd64".into(),
        })
    }

    async fn apply_manifest(
        &self,
        _yaml: &str,
        _field_manager: &str,
    ) -> vkube_kube::Result<Vec<AppliedObject>> {
        drop(self.call("apply manifest".into())?);
        Ok(Vec::new())
    }

    async fn ensure_bootstrap_token(
        &self,
        token_id: &str,
        _token_secret: &str,
        _expires: SystemTime,
        _description: &str,
    ) -> vkube_kube::Result<()> {
        drop(self.call(format!("token {token_id}"))?);
        Ok(())
    }

    async fn nodes(&self) -> vkube_kube::Result<Vec<NodeInfo>> {
        let state = self.call("list nodes".into())?;
        Ok(state.nodes.values().cloned().collect())
    }

    async fn node(&self, name: &str) -> vkube_kube::Result<Option<NodeInfo>> {
        let state = self.call(format!("get {name}"))?;
        Ok(state.nodes.get(name).cloned())
    }

    async fn cordon(&self, name: &str) -> vkube_kube::Result<NodeInfo> {
        self.set_unschedulable("cordon", name, true)
    }

    async fn uncordon(&self, name: &str) -> vkube_kube::Result<NodeInfo> {
        self.set_unschedulable("uncordon", name, false)
    }

    async fn drain(&self, name: &str, options: &DrainOptions) -> vkube_kube::Result<DrainReport> {
        let mut state = self.call(format!("drain {name}"))?;
        let Some(node) = state.nodes.get_mut(name) else {
            return Err(no_such_node(name));
        };
        node.unschedulable = true;
        if let Some(budget) = state.blocked.get(name).cloned() {
            if !options.force {
                return Err(vkube_kube::Error::DrainTimedOut {
                    node: name.to_owned(),
                    timeout: options.timeout,
                    blocked: vec![BlockedEviction {
                        pod: PodRef {
                            namespace: "default".into(),
                            name: "web-0".into(),
                        },
                        budgets: vec![format!("default/{budget}")],
                        message:
                            "Cannot evict pod as it would violate the pod's disruption budget."
                                .into(),
                    }],
                    terminating: Vec::new(),
                });
            }
        }
        Ok(DrainReport {
            node: name.to_owned(),
            ..Default::default()
        })
    }

    async fn delete_node(&self, name: &str) -> vkube_kube::Result<Deletion> {
        let mut state = self.call(format!("delete {name}"))?;
        Ok(match state.nodes.remove(name) {
            Some(_) => Deletion::Deleted,
            None => Deletion::AlreadyAbsent,
        })
    }

    async fn etcd_endpoints(&self) -> vkube_kube::Result<Vec<vkube_kube::EtcdEndpoint>> {
        let state = self.call("etcd pods".into())?;
        Ok(state
            .members
            .keys()
            .map(|name| vkube_kube::EtcdEndpoint {
                node: name.clone(),
                client_urls: member(name, MemberId(0)).client_urls,
            })
            .collect())
    }

    async fn api_health(&self) -> vkube_kube::Result<ApiHealth> {
        drop(self.call("readyz".into())?);
        Ok(ApiHealth::Ready)
    }
}

#[async_trait]
impl EtcdMembers for FakeCluster {
    async fn members(&self) -> Result<MemberList, EtcdError> {
        let state = self.etcd_call("etcd members".into())?;
        Ok(MemberList {
            cluster_id: MemberId(1),
            members: state
                .members
                .iter()
                .map(|(name, (id, _))| member(name, *id))
                .collect(),
            answered_by: "fake".into(),
        })
    }

    async fn health(&self) -> Result<ClusterHealth, EtcdError> {
        let state = self.etcd_call("etcd health".into())?;
        Ok(health_of(&state))
    }

    async fn remove_member(&self, target: MemberId) -> Result<Removal, EtcdError> {
        let mut state = self.etcd_call(format!("etcd remove {target}"))?;
        let health = health_of(&state);
        check_removal(&health, target)?;
        let name = state
            .members
            .iter()
            .find(|(_, (id, _))| *id == target)
            .map(|(name, _)| name.clone())
            .expect("check_removal found it");
        state.members.remove(&name);
        let remaining = state
            .members
            .iter()
            .map(|(name, (id, _))| member(name, *id))
            .collect();
        Ok(Removal {
            removed: member(&name, target),
            remaining,
            leadership_moved_to: None,
        })
    }
}

impl ClusterConnector for FakeCluster {
    fn api(&self, _access: &ClusterAccess) -> crate::Result<Arc<dyn ClusterApi>> {
        Ok(Arc::new(self.clone()))
    }

    fn etcd(&self, _access: &EtcdAccess) -> crate::Result<Arc<dyn EtcdMembers>> {
        Ok(Arc::new(self.clone()))
    }
}

/// How long ago `at` was, seen from `now` (zero when in the future).
#[allow(dead_code)]
pub fn age(now: SystemTime, at: SystemTime) -> Duration {
    now.duration_since(at).unwrap_or_default()
}
