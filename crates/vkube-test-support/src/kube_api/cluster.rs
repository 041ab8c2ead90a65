//! The part of kube-apiserver the stand-in emulates, behind the recorded answers:
//!
//! - `GET /version` and discovery per group version, including CRDs applied through it
//!   (served after a configurable number of further discovery requests, as establishing
//!   takes a moment);
//! - legacy discovery roots `GET /api` and `GET /apis` (for kubectl);
//! - the health endpoints `/readyz`, `/livez` and `/healthz`: `ok`;
//! - JSON merge patch (`application/merge-patch+json`, RFC 7386) of stored objects, and
//!   strategic merge patch for patches without lists (there the two agree: `kubectl cordon`
//!   sends one); patches with lists or `$` directives are refused as unevaluated;
//! - the Eviction API and pod deletion (see `pods.rs`): PodDisruptionBudgets checked and
//!   decremented as the API server's eviction handler does, pods removed at once or, with
//!   [`PodTermination::UntilRemoved`], left terminating until the test removes them;
//! - server-side apply: `PATCH` needs `application/apply-patch+yaml` (else the recorded 415)
//!   and a `fieldManager`; the body's apiVersion, kind, name and namespace must match the URL
//!   (else 400 as the server words it); namespaced objects need an existing namespace (else
//!   404 `namespaces "x" not found`); 201 on create, 200 on update, the object returned with
//!   uid, resourceVersion, creationTimestamp and managedFields;
//! - `GET` of an object, and of a collection (one namespace or all) filtered by
//!   equality-based label and field selectors; `DELETE` of an object, answered with the
//!   `Status` the generic registry returns (pods: the pod, as their registry does). Watches are not emulated (a test answers them
//!   itself).
//!
//! Stored objects are keyed by their API path.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use super::fixtures::{
    DISCOVERY, STATUS_404_NOT_FOUND, STATUS_415_UNSUPPORTED_MEDIA_TYPE, VERSION_1_30,
};
use super::reply::{status_body, Reply};
use super::request::{Recorded, APPLY_PATCH};
use super::selector::{self, Selector};

mod patch;
mod pods;

pub use pods::PodTermination;

/// Namespaces every kubeadm cluster has.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

#[derive(Debug, Clone)]
struct Resource {
    plural: String,
    kind: String,
    namespaced: bool,
}

#[derive(Debug)]
struct Crd {
    group: String,
    versions: Vec<String>,
    resource: Resource,
    singular: String,
    has_status: bool,
    /// Discovery requests still answered 404 before the CRD counts as established.
    pending_polls: u32,
}

/// Where a request points, below `/api/v1` or `/apis/<group>/<version>`.
struct Location<'a> {
    group_version: String,
    namespace: Option<&'a str>,
    plural: &'a str,
    /// `None` for the collection.
    name: Option<&'a str>,
}

/// The emulated cluster's state.
pub(crate) struct Cluster {
    builtin: HashMap<String, Vec<Resource>>,
    crds: Vec<Crd>,
    /// CRDs applied from now on are served after this many further discovery requests.
    pub(crate) crd_establish_polls: u32,
    namespaces: BTreeSet<String>,
    objects: BTreeMap<String, Value>,
    resource_version: u64,
    /// What deleting or evicting a pod does.
    pub(crate) pod_termination: PodTermination,
}

impl Cluster {
    pub(crate) fn new() -> Cluster {
        let mut cluster = Cluster {
            builtin: builtin_resources(),
            crds: Vec::new(),
            crd_establish_polls: 0,
            namespaces: BTreeSet::new(),
            objects: BTreeMap::new(),
            resource_version: 0,
            pod_termination: PodTermination::Immediate,
        };
        for name in INITIAL_NAMESPACES {
            let namespace = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            cluster.put(namespace).expect("a built-in namespace");
        }
        cluster
    }

    /// The stored object at an API path.
    pub(crate) fn object(&self, path: &str) -> Option<Value> {
        self.objects.get(path).cloned()
    }

    /// Stores `object` as if it had been created, filling in uid, resourceVersion and
    /// creationTimestamp where missing; returns its API path.
    pub(crate) fn put(&mut self, mut object: Value) -> Result<String, String> {
        let group_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if group_version.is_empty() || kind.is_empty() || name.is_empty() {
            return Err("the object needs apiVersion, kind and metadata.name".into());
        }
        let resource = self
            .resource_of_kind(&group_version, &kind)
            .ok_or_else(|| format!("{group_version} {kind} is not served by the stand-in"))?;
        let namespace = match (
            resource.namespaced,
            object["metadata"]["namespace"].as_str(),
        ) {
            (true, ns) => Some(ns.unwrap_or("default").to_string()),
            (false, None) => None,
            (false, Some(_)) => return Err(format!("{kind} is cluster-scoped")),
        };
        let path = object_path(
            &group_version,
            namespace.as_deref(),
            &resource.plural,
            &name,
        );
        self.resource_version += 1;
        let metadata = object["metadata"]
            .as_object_mut()
            .ok_or("metadata is not a map")?;
        if let Some(ns) = &namespace {
            metadata.insert("namespace".into(), json!(ns));
        }
        let uid = uid(self.resource_version);
        metadata.entry("uid").or_insert(uid);
        metadata.entry("creationTimestamp").or_insert(json!(now()));
        metadata.insert(
            "resourceVersion".into(),
            json!(self.resource_version.to_string()),
        );
        self.remember_side_effects(&object);
        self.objects.insert(path.clone(), object);
        Ok(path)
    }

    /// Removes the object at `path`, returning it.
    pub(crate) fn remove(&mut self, path: &str) -> Option<Value> {
        let object = self.objects.remove(path)?;
        self.resource_version += 1;
        self.forget_side_effects(&object);
        Some(object)
    }

    /// The stand-in's own answer to `request`.
    pub(crate) fn answer(&mut self, request: &Recorded) -> Reply {
        if request.method == "GET" {
            match request.path.as_str() {
                "/version" => return Reply::json(200, VERSION_1_30),
                "/api" => return Reply::value(200, &api_versions()),
                "/apis" => return Reply::value(200, &self.api_groups()),
                "/readyz" | "/livez" | "/healthz" => return Reply::text(200, "ok"),
                _ => {}
            }
        }
        let not_found = Reply::json(404, STATUS_404_NOT_FOUND);
        let Some((group_version, rest)) = split_api_path(&request.path) else {
            return not_found;
        };
        if request.method == "GET" && rest.is_empty() {
            return self.discovery(&group_version).unwrap_or(not_found);
        }
        if let (true, ["namespaces", namespace, "pods", name, "eviction"]) =
            (group_version == "v1", rest.as_slice())
        {
            return match request.method.as_str() {
                "POST" => self.evict(request, namespace, name),
                _ => method_not_allowed(),
            };
        }
        let Some(location) = self.locate(group_version, &rest) else {
            return not_found;
        };
        let Some(resource) = self.find_resource(&location.group_version, location.plural) else {
            return not_found;
        };
        let scope_fits = match (resource.namespaced, location.namespace, location.name) {
            // A cluster-scoped resource below a namespace, or a namespaced object without one.
            (false, Some(_), _) | (true, None, Some(_)) => false,
            _ => true,
        };
        if !scope_fits {
            return not_found;
        }
        match (request.method.as_str(), location.name) {
            ("GET", None) => self.list(request, &location, &resource),
            ("GET", Some(name)) => match self.objects.get(&request.path) {
                Some(object) => Reply::value(200, object),
                None => object_not_found(&location.group_version, &resource.plural, name),
            },
            ("PATCH", Some(name)) => match request.content_type.as_deref() {
                Some(APPLY_PATCH) => self.apply(request, &location, &resource, name),
                Some(content_type) if patch::MergeKind::of(content_type).is_some() => {
                    self.merge_patch(request, &location, &resource, name)
                }
                _ => Reply::json(415, STATUS_415_UNSUPPORTED_MEDIA_TYPE),
            },
            ("DELETE", Some(name))
                if location.group_version == "v1" && resource.plural == "pods" =>
            {
                self.delete_pod(request, name)
            }
            ("DELETE", Some(name)) => self.delete(&request.path, &location, &resource, name),
            _ => not_found,
        }
    }

    /// Splits the path below the group version into namespace, resource and name; `None`
    /// for subresources and paths that name no resource.
    fn locate<'a>(&self, group_version: String, rest: &[&'a str]) -> Option<Location<'a>> {
        let namespaced_plural = |plural: &str| {
            self.find_resource(&group_version, plural)
                .is_some_and(|r| r.namespaced)
        };
        let (namespace, plural, name) = match *rest {
            [plural] => (None, plural, None),
            [plural, name] => (None, plural, Some(name)),
            ["namespaces", ns, plural] if namespaced_plural(plural) => (Some(ns), plural, None),
            ["namespaces", ns, plural, name] => (Some(ns), plural, Some(name)),
            _ => return None,
        };
        Some(Location {
            group_version,
            namespace,
            plural,
            name,
        })
    }

    fn discovery(&mut self, group_version: &str) -> Option<Reply> {
        if let Some((_, body)) = DISCOVERY.iter().find(|(gv, _)| *gv == group_version) {
            return Some(Reply::json(200, *body));
        }
        let (group, version) = group_version.split_once('/')?;
        let mut served = Vec::new();
        for crd in self
            .crds
            .iter_mut()
            .filter(|c| c.group == group && c.versions.iter().any(|v| v == version))
        {
            if crd.pending_polls > 0 {
                crd.pending_polls -= 1;
                continue;
            }
            served.push(json!({
                "name": crd.resource.plural,
                "singularName": crd.singular,
                "namespaced": crd.resource.namespaced,
                "kind": crd.resource.kind,
                "verbs": ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
            }));
            if crd.has_status {
                served.push(json!({
                    "name": format!("{}/status", crd.resource.plural),
                    "singularName": "",
                    "namespaced": crd.resource.namespaced,
                    "kind": crd.resource.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        if served.is_empty() {
            return None;
        }
        let list = json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": served,
        });
        Some(Reply::value(200, &list))
    }

    /// `GET /apis`: the built-in groups and those of established CRDs (legacy discovery, which
    /// the server sends to clients that also accept plain JSON, as kubectl does).
    fn api_groups(&self) -> Value {
        let mut versions: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let builtin = DISCOVERY
            .iter()
            .filter_map(|(group_version, _)| group_version.split_once('/'));
        let crds = self
            .crds
            .iter()
            .filter(|crd| crd.pending_polls == 0)
            .flat_map(|crd| {
                crd.versions
                    .iter()
                    .map(|v| (crd.group.as_str(), v.as_str()))
            });
        for (group, version) in builtin.chain(crds) {
            let known = versions.entry(group).or_default();
            if !known.contains(&version) {
                known.push(version);
            }
        }
        let groups: Vec<Value> = versions
            .into_iter()
            .map(|(group, versions)| {
                let entry = |version: &str| {
                    json!({"groupVersion": format!("{group}/{version}"), "version": version})
                };
                json!({
                    "name": group,
                    "versions": versions.iter().map(|v| entry(v)).collect::<Vec<_>>(),
                    "preferredVersion": entry(versions[0]),
                })
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    fn find_resource(&self, group_version: &str, plural: &str) -> Option<Resource> {
        self.served_resources(group_version)
            .find(|r| r.plural == plural)
            .cloned()
    }

    fn resource_of_kind(&self, group_version: &str, kind: &str) -> Option<Resource> {
        self.served_resources(group_version)
            .find(|r| r.kind == kind)
            .cloned()
    }

    /// Built-in resources of the group version, then established CRDs.
    fn served_resources<'a>(
        &'a self,
        group_version: &'a str,
    ) -> impl Iterator<Item = &'a Resource> {
        let builtin = self.builtin.get(group_version).into_iter().flatten();
        let crds = self
            .crds
            .iter()
            .filter(move |c| {
                c.pending_polls == 0
                    && group_version
                        .split_once('/')
                        .is_some_and(|(group, version)| {
                            c.group == group && c.versions.iter().any(|v| v == version)
                        })
            })
            .map(|c| &c.resource);
        builtin.chain(crds)
    }

    fn is_builtin(&self, group_version: &str) -> bool {
        self.builtin.contains_key(group_version)
    }

    fn list(&self, request: &Recorded, location: &Location<'_>, resource: &Resource) -> Reply {
        if matches!(request.query_value("watch").as_deref(), Some("true" | "1")) {
            return bad_request(
                "the stand-in does not emulate watches; answer this route from the test \
                 (StandIn::respond_with)",
            );
        }
        let mut selectors = Vec::new();
        for (key, kind) in [
            ("labelSelector", selector::Kind::Label),
            ("fieldSelector", selector::Kind::Field),
        ] {
            let text = request.query_value(key).unwrap_or_default();
            match Selector::parse(&text) {
                Ok(parsed) => selectors.push((parsed, kind)),
                Err(message) => return bad_request(&message),
            }
        }
        let builtin = self.is_builtin(&location.group_version);
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|(path, _)| {
                let Some((gv, rest)) = split_api_path(path) else {
                    return false;
                };
                let (ns, plural) = match rest.as_slice() {
                    [plural, _] => (None, *plural),
                    ["namespaces", ns, plural, _] => (Some(*ns), *plural),
                    _ => return false,
                };
                gv == location.group_version
                    && plural == resource.plural
                    && (location.namespace.is_none() || ns == location.namespace)
            })
            .map(|(_, object)| object)
            .filter(|object| selectors.iter().all(|(s, kind)| s.matches(*kind, object)))
            .map(|object| {
                let mut item = object.clone();
                // The server leaves kind and apiVersion out of built-in list items.
                if builtin {
                    let map = item.as_object_mut().unwrap();
                    map.remove("kind");
                    map.remove("apiVersion");
                }
                item
            })
            .collect();
        Reply::value(
            200,
            &json!({
                "kind": format!("{}List", resource.kind),
                "apiVersion": location.group_version,
                "metadata": {"resourceVersion": self.resource_version.to_string()},
                "items": items,
            }),
        )
    }

    fn delete(
        &mut self,
        path: &str,
        location: &Location<'_>,
        resource: &Resource,
        name: &str,
    ) -> Reply {
        let Some(object) = self.remove(path) else {
            return object_not_found(&location.group_version, &resource.plural, name);
        };
        // The generic registry's answer (stores that return the deleted object instead,
        // such as pods, are not told apart).
        let mut details =
            json!({"name": name, "kind": resource.plural, "uid": object["metadata"]["uid"]});
        if let Some((group, _)) = location.group_version.split_once('/') {
            details["group"] = json!(group);
        }
        Reply::value(
            200,
            &json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": details,
            }),
        )
    }

    fn apply(
        &mut self,
        request: &Recorded,
        location: &Location<'_>,
        resource: &Resource,
        name: &str,
    ) -> Reply {
        let group_version = location.group_version.as_str();
        let namespace = location.namespace;
        let Some(field_manager) = request
            .query_value("fieldManager")
            .filter(|v| !v.is_empty())
        else {
            return bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch");
        };
        let Ok(mut object) = serde_json::from_slice::<Value>(&request.body) else {
            return bad_request("error decoding YAML: the apply body is not a Kubernetes object");
        };
        if object["apiVersion"] != group_version || object["kind"] != resource.kind.as_str() {
            return bad_request(&format!(
                "the API version in the data ({}) does not match the expected API version ({group_version})",
                object["apiVersion"].as_str().unwrap_or("")
            ));
        }
        if object["metadata"]["name"] != name {
            return bad_request(&format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                object["metadata"]["name"].as_str().unwrap_or("")
            ));
        }
        if let Some(ns) = namespace {
            if object["metadata"]["namespace"]
                .as_str()
                .is_some_and(|body_ns| body_ns != ns)
            {
                return bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                );
            }
            if !self.namespaces.contains(ns) {
                return Reply::failure(
                    404,
                    "NotFound",
                    &format!("namespaces \"{ns}\" not found"),
                    json!({"name": ns, "kind": "namespaces"}),
                );
            }
        }

        let previous = self.objects.get(&request.path).cloned();
        self.resource_version += 1;
        let now = now();
        let fields = managed_fields_of(&object);
        let Some(metadata) = object["metadata"].as_object_mut() else {
            return bad_request("metadata is not a map");
        };
        if let Some(ns) = namespace {
            metadata.insert("namespace".into(), json!(ns));
        }
        let (uid, created) = match &previous {
            Some(old) => (
                old["metadata"]["uid"].clone(),
                old["metadata"]["creationTimestamp"].clone(),
            ),
            None => (uid(self.resource_version), json!(now)),
        };
        metadata.insert("uid".into(), uid);
        metadata.insert(
            "resourceVersion".into(),
            json!(self.resource_version.to_string()),
        );
        metadata.insert("creationTimestamp".into(), created);
        metadata.insert(
            "managedFields".into(),
            json!([{
                "manager": field_manager,
                "operation": "Apply",
                "apiVersion": group_version,
                "time": now,
                "fieldsType": "FieldsV1",
                "fieldsV1": fields,
            }]),
        );
        self.remember_side_effects(&object);
        self.objects.insert(request.path.clone(), object.clone());
        Reply::value(if previous.is_some() { 200 } else { 201 }, &object)
    }

    /// Namespaces make namespaced objects possible; CRDs add served kinds.
    fn remember_side_effects(&mut self, object: &Value) {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        match (object["apiVersion"].as_str(), object["kind"].as_str()) {
            (Some("v1"), Some("Namespace")) => {
                self.namespaces.insert(name);
            }
            (Some("apiextensions.k8s.io/v1"), Some("CustomResourceDefinition")) => {
                let crd = crd_of(object, self.crd_establish_polls);
                self.crds
                    .retain(|c| c.group != crd.group || c.resource.plural != crd.resource.plural);
                self.crds.push(crd);
            }
            _ => {}
        }
    }

    fn forget_side_effects(&mut self, object: &Value) {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        match (object["apiVersion"].as_str(), object["kind"].as_str()) {
            (Some("v1"), Some("Namespace")) => {
                self.namespaces.remove(name);
            }
            (Some("apiextensions.k8s.io/v1"), Some("CustomResourceDefinition")) => {
                let crd = crd_of(object, 0);
                self.crds
                    .retain(|c| c.group != crd.group || c.resource.plural != crd.resource.plural);
            }
            _ => {}
        }
    }
}

fn crd_of(object: &Value, pending_polls: u32) -> Crd {
    let spec = &object["spec"];
    let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    Crd {
        group: text(&spec["group"]),
        versions: versions
            .iter()
            .filter_map(|v| v["name"].as_str().map(str::to_string))
            .collect(),
        resource: Resource {
            plural: text(&spec["names"]["plural"]),
            kind: text(&spec["names"]["kind"]),
            namespaced: spec["scope"] == "Namespaced",
        },
        singular: spec["names"]["singular"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| text(&spec["names"]["kind"]).to_lowercase()),
        has_status: versions
            .iter()
            .any(|v| v["subresources"].get("status").is_some()),
        pending_polls,
    }
}

fn builtin_resources() -> HashMap<String, Vec<Resource>> {
    DISCOVERY
        .iter()
        .map(|(group_version, body)| {
            let list: Value = serde_json::from_str(body).expect("discovery fixtures are JSON");
            let resources = list["resources"]
                .as_array()
                .expect("discovery fixtures list resources")
                .iter()
                .filter(|r| !r["name"].as_str().unwrap_or_default().contains('/'))
                .map(|r| Resource {
                    plural: r["name"].as_str().unwrap_or_default().to_string(),
                    kind: r["kind"].as_str().unwrap_or_default().to_string(),
                    namespaced: r["namespaced"].as_bool().unwrap_or_default(),
                })
                .collect();
            (group_version.to_string(), resources)
        })
        .collect()
}

/// `/api/v1/…` or `/apis/<group>/<version>/…`: the group version and the segments below.
fn split_api_path(path: &str) -> Option<(String, Vec<&str>)> {
    let segments: Vec<&str> = path
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        ["api", version, rest @ ..] => Some((version.to_string(), rest.to_vec())),
        ["apis", group, version, rest @ ..] => Some((format!("{group}/{version}"), rest.to_vec())),
        _ => None,
    }
}

/// The namespace an object path lies in (`/api/v1/namespaces/<ns>/<plural>/<name>`).
pub(crate) fn namespace_of_path(path: &str) -> Option<String> {
    match split_api_path(path)?.1.as_slice() {
        ["namespaces", ns, _, _, ..] => Some(ns.to_string()),
        _ => None,
    }
}

/// The API path of an object.
pub(crate) fn object_path(
    group_version: &str,
    namespace: Option<&str>,
    plural: &str,
    name: &str,
) -> String {
    let root = if group_version.contains('/') {
        format!("/apis/{group_version}")
    } else {
        format!("/api/{group_version}")
    };
    match namespace {
        Some(ns) => format!("{root}/namespaces/{ns}/{plural}/{name}"),
        None => format!("{root}/{plural}/{name}"),
    }
}

/// `clusterroles.rbac.authorization.k8s.io "x" not found`, as the server words it.
fn object_not_found(group_version: &str, plural: &str, name: &str) -> Reply {
    let group = group_version.split_once('/').map(|(g, _)| g);
    let qualified = match group {
        Some(group) => format!("{plural}.{group}"),
        None => plural.to_string(),
    };
    let mut details = json!({"name": name, "kind": plural});
    if let Some(group) = group {
        details["group"] = json!(group);
    }
    Reply::failure(
        404,
        "NotFound",
        &format!("{qualified} \"{name}\" not found"),
        details,
    )
}

/// `GET /api`: the core group's versions (the address is illustrative; clients ignore it).
fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "10.20.0.11:6443"}],
    })
}

fn method_not_allowed() -> Reply {
    Reply::failure(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
        json!({}),
    )
}

fn bad_request(message: &str) -> Reply {
    Reply::json(400, status_body(400, "BadRequest", message, json!({})))
}

fn uid(sequence: u64) -> Value {
    json!(format!("6f1c2a4e-0000-4000-8000-{sequence:012x}"))
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `fieldsV1` of the applied fields. Simplified: lists are owned whole (the real server keys
/// the items of associative lists); clients do not read this.
fn managed_fields_of(object: &Value) -> Value {
    fn fields(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (format!("f:{k}"), fields(v)))
                    .collect::<Map<String, Value>>(),
            ),
            _ => json!({}),
        }
    }
    let mut owned = object.clone();
    let Some(map) = owned.as_object_mut() else {
        return json!({});
    };
    map.remove("apiVersion");
    map.remove("kind");
    if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("name");
        metadata.remove("namespace");
        if metadata.is_empty() {
            map.remove("metadata");
        }
    }
    fields(&owned)
}
