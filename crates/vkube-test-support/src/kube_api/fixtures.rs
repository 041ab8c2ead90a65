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
pub const DISCOVERY: [(&str, &str); 5] = [
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
