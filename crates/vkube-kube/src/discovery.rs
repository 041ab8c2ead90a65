//! API discovery: which resources (plural name, scope) a group version serves, read from the
//! API server's `APIResourceList` (`/api/v1`, `/apis/<group>/<version>`) and cached per client.
//! Only the group versions a manifest uses are fetched, one request each; a group version that
//! is not served (404, e.g. before its CRD exists) is cached as such until refreshed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A resource of a group version, as needed to address its objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServedResource {
    pub(crate) kind: String,
    pub(crate) plural: String,
    pub(crate) namespaced: bool,
}

/// What the API server serves for one `apiVersion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GroupVersionResources {
    /// The group version exists with these resources (subresources left out).
    Served(Vec<ServedResource>),
    /// The API server answered 404 for the group version.
    NotServed,
}

impl GroupVersionResources {
    pub(crate) fn find(&self, kind: &str) -> Option<&ServedResource> {
        match self {
            GroupVersionResources::Served(resources) => resources.iter().find(|r| r.kind == kind),
            GroupVersionResources::NotServed => None,
        }
    }
}

/// The discovery path of an `apiVersion`: `v1` is the core group under `/api`.
pub(crate) fn discovery_path(api_version: &str) -> String {
    if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    }
}

/// The collection path for a resource: `/api/v1/namespaces/kube-system/secrets`.
pub(crate) fn collection_path(
    api_version: &str,
    resource: &ServedResource,
    namespace: Option<&str>,
) -> String {
    let base = discovery_path(api_version);
    match namespace {
        Some(ns) if resource.namespaced => format!("{base}/namespaces/{ns}/{}", resource.plural),
        _ => format!("{base}/{}", resource.plural),
    }
}

/// The parts of an `APIResourceList` used here; read leniently (aggregated API servers are not
/// always complete), anything else is ignored.
#[derive(serde::Deserialize)]
struct ResourceList {
    #[serde(default)]
    resources: Vec<ListedResource>,
}

#[derive(serde::Deserialize)]
struct ListedResource {
    name: String,
    kind: String,
    #[serde(default)]
    namespaced: bool,
}

/// Read an `APIResourceList` body.
pub(crate) fn parse_resource_list(body: &[u8]) -> Result<Vec<ServedResource>, serde_json::Error> {
    let list: ResourceList = serde_json::from_slice(body)?;
    Ok(list
        .resources
        .into_iter()
        .filter(|r| !r.name.contains('/'))
        .map(|r| ServedResource {
            kind: r.kind,
            plural: r.name,
            namespaced: r.namespaced,
        })
        .collect())
}

/// Discovery results per `apiVersion`, shared by clones of a client.
#[derive(Debug, Default, Clone)]
pub(crate) struct DiscoveryCache {
    entries: Arc<Mutex<HashMap<String, Arc<GroupVersionResources>>>>,
}

impl DiscoveryCache {
    pub(crate) fn get(&self, api_version: &str) -> Option<Arc<GroupVersionResources>> {
        self.lock().get(api_version).cloned()
    }

    pub(crate) fn put(
        &self,
        api_version: &str,
        resources: GroupVersionResources,
    ) -> Arc<GroupVersionResources> {
        let resources = Arc::new(resources);
        self.lock()
            .insert(api_version.to_string(), Arc::clone(&resources));
        resources
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<GroupVersionResources>>> {
        // A panic while holding the lock cannot leave the map half-written (single inserts).
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_lists_drop_subresources() {
        let body = br#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"apps/v1","resources":[
            {"name":"daemonsets","singularName":"daemonset","namespaced":true,"kind":"DaemonSet","verbs":["get"],"shortNames":["ds"]},
            {"name":"daemonsets/status","singularName":"","namespaced":true,"kind":"DaemonSet","verbs":["get"]}]}"#;
        let resources = parse_resource_list(body).unwrap();
        assert_eq!(
            resources,
            [ServedResource {
                kind: "DaemonSet".into(),
                plural: "daemonsets".into(),
                namespaced: true
            }]
        );
    }

    #[test]
    fn paths_follow_the_group_and_scope() {
        let secrets = ServedResource {
            kind: "Secret".into(),
            plural: "secrets".into(),
            namespaced: true,
        };
        let roles = ServedResource {
            kind: "ClusterRole".into(),
            plural: "clusterroles".into(),
            namespaced: false,
        };
        assert_eq!(
            collection_path("v1", &secrets, Some("kube-system")),
            "/api/v1/namespaces/kube-system/secrets"
        );
        assert_eq!(
            collection_path("rbac.authorization.k8s.io/v1", &roles, None),
            "/apis/rbac.authorization.k8s.io/v1/clusterroles"
        );
    }
}
