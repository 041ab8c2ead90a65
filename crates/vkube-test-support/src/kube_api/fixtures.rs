//! Response bodies in the exact shape kube-apiserver 1.30 sends, hand-written (no API server
//! can run here; see `fixtures/kube-api/README.md` in this crate).

macro_rules! fixture {
    ($file:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/kube-api/",
            $file
        ))
    };
}

/// `GET /version` of a 1.30.4 server.
pub const VERSION_1_30: &str = fixture!("version-1.30.json");

/// `APIResourceList` answers of the built-in group versions the stand-in serves, by group
/// version (`v1` is the core group, `GET /api/v1`).
pub const DISCOVERY: [(&str, &str); 6] = [
    ("v1", fixture!("discovery-core-v1.json")),
    ("apps/v1", fixture!("discovery-apps-v1.json")),
    (
        "rbac.authorization.k8s.io/v1",
        fixture!("discovery-rbac.authorization.k8s.io-v1.json"),
    ),
    (
        "storage.k8s.io/v1",
        fixture!("discovery-storage.k8s.io-v1.json"),
    ),
    (
        "apiextensions.k8s.io/v1",
        fixture!("discovery-apiextensions.k8s.io-v1.json"),
    ),
    ("policy/v1", fixture!("discovery-policy-v1.json")),
];

/// 401 for a client certificate the server does not accept.
pub const STATUS_401_UNAUTHORIZED: &str = fixture!("status-401-unauthorized.json");
/// 403 from RBAC: user `vkube-addons` may not patch ClusterRole `cilium`.
pub const STATUS_403_FORBIDDEN: &str = fixture!("status-403-forbidden-clusterrole.json");
/// 404 for a path the server does not serve.
pub const STATUS_404_NOT_FOUND: &str = fixture!("status-404-not-found.json");
/// 409 for ConfigMap `cilium-config` applied with a stale `resourceVersion`.
pub const STATUS_409_CONFLICT: &str = fixture!("status-409-conflict-configmap.json");
/// 415 for a `PATCH` with a content type the server does not take.
pub const STATUS_415_UNSUPPORTED_MEDIA_TYPE: &str =
    fixture!("status-415-unsupported-media-type.json");

/// `GET /api/v1/nodes` of cluster `demo`: `demo-cp-0` (Ready, control-plane taint),
/// `demo-workers-0` (Ready), `demo-workers-1` (kubelet stopped posting: every condition
/// `Unknown`, `unreachable` taints) and `demo-workers-2` (just joined: `Ready=False`,
/// `KubeletNotReady` as the CNI is not up, `not-ready` taint). Put its items with
/// [`super::StandIn::put_items`].
pub const NODE_LIST: &str = fixture!("node-list-1.30.json");
/// `GET /api/v1/pods` of cluster `demo`: on `demo-cp-0` the mirror pods `etcd-demo-cp-0` and
/// `kube-apiserver-demo-cp-0`, DaemonSet pod `cilium-x8d2w` and `coredns-7db6d8ff4d-k2m4z`;
/// on `demo-workers-0` DaemonSet pods `cilium-p4v9k` and `kube-proxy-9fz4q`,
/// `web-6d4cf56db6-q7m2x` (ReplicaSet, `app=web`), `db-0` (StatefulSet, `app=db`), `debug`
/// (no controller) and `report-28751040-8kq5z` (Job, `Succeeded`); on `demo-workers-1`
/// `web-6d4cf56db6-t9w4c`.
pub const POD_LIST: &str = fixture!("pod-list-1.30.json");
/// `GET /apis/policy/v1/poddisruptionbudgets` of cluster `demo`: `default/db` (`app In (db)`,
/// `maxUnavailable: 1`, one disruption allowed), `default/web` (`app=web`, `minAvailable: 2`
/// of 2 healthy: no disruption allowed) and `kube-system/coredns` (one allowed).
pub const PDB_LIST: &str = fixture!("pdb-list-1.30.json");
/// 201 for an eviction the API server granted (the pod is being deleted).
pub const STATUS_201_EVICTION: &str = fixture!("status-201-eviction.json");
/// 429 for an eviction of a pod covered by PodDisruptionBudget `web`, which allows no
/// disruption (`needs 2 healthy pods and has 2 currently`).
pub const STATUS_429_EVICTION_BLOCKED: &str =
    fixture!("status-429-eviction-disruption-budget.json");
/// 500 for an eviction of a pod that more than one PodDisruptionBudget covers.
pub const STATUS_500_EVICTION_MULTIPLE_BUDGETS: &str =
    fixture!("status-500-eviction-multiple-budgets.json");
/// 500 of `GET /readyz` while the API server cannot reach etcd (text, not JSON).
pub const READYZ_ETCD_FAILED: &str = fixture!("readyz-etcd-failed.txt");
