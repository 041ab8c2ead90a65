//! Small builders for Kubernetes objects as `serde_json` values, and the
//! YAML stream they are applied as. Generic on purpose (nothing here knows
//! a CNI): the other add-on renderers can use them as well.
//!
//! Objects are plain [`Value`]s built with `serde_json::json!`, so a
//! manifest reads like the YAML it becomes. [`yaml_stream`] puts
//! `apiVersion`, `kind` and `metadata` first in every document; nested keys
//! come out sorted, as `kubectl get -o yaml` prints them.

use serde_json::{json, Map, Value};

/// `app.kubernetes.io/managed-by` on every object vkube renders, so the
/// add-ons it owns can be listed and pruned.
pub const MANAGED_BY: &str = "vkube";

/// Kubernetes minor from which a pod's AppArmor profile is a
/// `securityContext.appArmorProfile` field (GA in 1.30); before it, only
/// the `container.apparmor.security.beta.kubernetes.io/<container>`
/// annotation exists.
pub const APPARMOR_FIELD_MINOR: u64 = 30;

/// Object metadata: name, optional namespace, labels.
pub fn metadata(name: &str, namespace: Option<&str>, labels: &Value) -> Value {
    let mut meta = Map::new();
    meta.insert("name".into(), json!(name));
    if let Some(namespace) = namespace {
        meta.insert("namespace".into(), json!(namespace));
    }
    if labels.as_object().is_some_and(|l| !l.is_empty()) {
        meta.insert("labels".into(), labels.clone());
    }
    Value::Object(meta)
}

/// The labels of every object of one add-on (`part-of` names the add-on).
pub fn addon_labels(part_of: &str) -> Value {
    json!({
        "app.kubernetes.io/managed-by": MANAGED_BY,
        "app.kubernetes.io/part-of": part_of,
    })
}

/// `labels` with `extra` added (extra wins on a clash).
pub fn with_labels(labels: &Value, extra: &Value) -> Value {
    merge(labels.clone(), extra.clone())
}

/// A ServiceAccount.
pub fn service_account(name: &str, namespace: &str, labels: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(name, Some(namespace), labels),
    })
}

/// A ConfigMap with string data.
pub fn config_map<'a>(
    name: &str,
    namespace: &str,
    labels: &Value,
    data: impl IntoIterator<Item = (&'a str, String)>,
) -> Value {
    let data: Map<String, Value> = data
        .into_iter()
        .map(|(key, value)| (key.to_owned(), Value::String(value)))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(name, Some(namespace), labels),
        "data": data,
    })
}

/// One RBAC policy rule.
pub fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Value {
    json!({ "apiGroups": groups, "resources": resources, "verbs": verbs })
}

/// One RBAC policy rule limited to named objects.
pub fn named_rule(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> Value {
    json!({
        "apiGroups": groups,
        "resources": resources,
        "resourceNames": names,
        "verbs": verbs,
    })
}

/// A ClusterRole.
pub fn cluster_role(name: &str, labels: &Value, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": metadata(name, None, labels),
        "rules": rules,
    })
}

/// A namespaced Role.
pub fn role(name: &str, namespace: &str, labels: &Value, rules: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(name, Some(namespace), labels),
        "rules": rules,
    })
}

/// A ServiceAccount as an RBAC subject.
pub fn service_account_subject(name: &str, namespace: &str) -> Value {
    json!({ "kind": "ServiceAccount", "name": name, "namespace": namespace })
}

/// A ClusterRoleBinding of the ClusterRole `role` to `subjects`.
pub fn cluster_role_binding(name: &str, labels: &Value, role: &str, subjects: Vec<Value>) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": metadata(name, None, labels),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role,
        },
        "subjects": subjects,
    })
}

/// A RoleBinding of the Role `role` (same namespace) to `subjects`.
pub fn role_binding(
    name: &str,
    namespace: &str,
    labels: &Value,
    role: &str,
    subjects: Vec<Value>,
) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(name, Some(namespace), labels),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role,
        },
        "subjects": subjects,
    })
}

/// A PodDisruptionBudget allowing `max_unavailable` pods of `selector`
/// down at once.
pub fn pod_disruption_budget(
    name: &str,
    namespace: &str,
    labels: &Value,
    selector: &Value,
    max_unavailable: u32,
) -> Value {
    json!({
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(name, Some(namespace), labels),
        "spec": {
            "maxUnavailable": max_unavailable,
            "selector": { "matchLabels": selector },
        },
    })
}

/// Whether a CustomResourceDefinition is namespaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One object per namespace and name.
    Namespaced,
    /// One object per name, cluster-wide.
    Cluster,
}

impl Scope {
    fn as_str(self) -> &'static str {
        match self {
            Scope::Namespaced => "Namespaced",
            Scope::Cluster => "Cluster",
        }
    }
}

/// What a structural CustomResourceDefinition is made from.
#[derive(Debug, Clone, Copy)]
pub struct CrdSpec<'a> {
    /// API group, e.g. `crd.projectcalico.org`.
    pub group: &'a str,
    /// The one served and stored version, e.g. `v1`.
    pub version: &'a str,
    /// Kind, e.g. `IPPool`.
    pub kind: &'a str,
    /// Plural resource name, e.g. `ippools`.
    pub plural: &'a str,
    /// Namespaced or cluster-wide.
    pub scope: Scope,
    /// Whether the kind has a `status` subresource.
    pub status_subresource: bool,
}

/// A CustomResourceDefinition whose schema is structural but open: an
/// object whose fields the API server keeps as they are
/// (`x-kubernetes-preserve-unknown-fields`). For kinds that controllers
/// write and read themselves, where the full upstream schema would only be
/// a copy. `annotations` are added as given (e.g. the
/// `api-approved.kubernetes.io` one `*.k8s.io` groups require).
pub fn open_crd(spec: &CrdSpec<'_>, labels: &Value, annotations: &[(&str, &str)]) -> Value {
    let name = format!("{}.{}", spec.plural, spec.group);
    let mut meta = metadata(&name, None, labels);
    if !annotations.is_empty() {
        let annotations: Map<String, Value> = annotations
            .iter()
            .map(|(key, value)| ((*key).to_owned(), json!(value)))
            .collect();
        meta["annotations"] = Value::Object(annotations);
    }
    let mut version = json!({
        "name": spec.version,
        "served": true,
        "storage": true,
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "x-kubernetes-preserve-unknown-fields": true,
            },
        },
    });
    if spec.status_subresource {
        version["subresources"] = json!({ "status": {} });
    }
    let kind_lower = spec.kind.to_ascii_lowercase();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": meta,
        "spec": {
            "group": spec.group,
            "names": {
                "kind": spec.kind,
                "listKind": format!("{}List", spec.kind),
                "plural": spec.plural,
                "singular": kind_lower,
            },
            "scope": spec.scope.as_str(),
            "versions": [version],
        },
    })
}

/// `base` with the top-level fields of `extra` added (extra wins).
pub fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// An environment variable with a literal value.
pub fn env(name: &str, value: impl Into<String>) -> Value {
    json!({ "name": name, "value": value.into() })
}

/// An environment variable from a field of the pod (`spec.nodeName`, …).
pub fn env_from_field(name: &str, field_path: &str) -> Value {
    json!({
        "name": name,
        "valueFrom": { "fieldRef": { "apiVersion": "v1", "fieldPath": field_path } },
    })
}

/// An environment variable from a ConfigMap key.
pub fn env_from_config_map(name: &str, config_map: &str, key: &str, optional: bool) -> Value {
    json!({
        "name": name,
        "valueFrom": {
            "configMapKeyRef": { "name": config_map, "key": key, "optional": optional },
        },
    })
}

/// A hostPath volume; `kind` is the hostPath type (`Directory`,
/// `DirectoryOrCreate`, `FileOrCreate`, …), `None` for no check.
pub fn host_path_volume(name: &str, path: &str, kind: Option<&str>) -> Value {
    let mut host_path = json!({ "path": path });
    if let Some(kind) = kind {
        host_path["type"] = json!(kind);
    }
    json!({ "name": name, "hostPath": host_path })
}

/// A volume mount.
pub fn mount(name: &str, path: &str) -> Value {
    json!({ "name": name, "mountPath": path })
}

/// A read-only volume mount.
pub fn mount_read_only(name: &str, path: &str) -> Value {
    json!({ "name": name, "mountPath": path, "readOnly": true })
}

/// A volume mount with mount propagation (`HostToContainer`,
/// `Bidirectional`).
pub fn mount_propagated(name: &str, path: &str, propagation: &str) -> Value {
    json!({ "name": name, "mountPath": path, "mountPropagation": propagation })
}

/// Tolerate every taint: for node agents (CNI, CSI node plugin) that must
/// run on every node, whatever taints the cluster or its users put there —
/// including `node.kubernetes.io/not-ready`, `node.kubernetes.io/unreachable`,
/// `node.cloudprovider.kubernetes.io/uninitialized` and the control-plane
/// taint.
pub fn tolerate_all() -> Value {
    json!([{ "operator": "Exists" }])
}

/// Whether `tolerations` let a pod onto a node tainted `key` with `effect`.
pub fn tolerates(tolerations: &Value, key: &str, effect: &str) -> bool {
    tolerations.as_array().is_some_and(|list| {
        list.iter().any(|t| {
            let key_matches = match t.get("key").and_then(Value::as_str) {
                None | Some("") => t.get("operator").and_then(Value::as_str) == Some("Exists"),
                Some(k) => k == key,
            };
            let effect_matches = match t.get("effect").and_then(Value::as_str) {
                None | Some("") => true,
                Some(e) => e == effect,
            };
            key_matches && effect_matches
        })
    })
}

/// Unconfined AppArmor for `containers` of a pod on Kubernetes `minor`:
/// the pod-level `securityContext.appArmorProfile` from 1.30, the per-
/// container beta annotations before. Returns (pod annotations, pod
/// securityContext fields to merge).
pub fn apparmor_unconfined(
    minor: u64,
    containers: &[&str],
) -> (Map<String, Value>, Map<String, Value>) {
    let mut annotations = Map::new();
    let mut security = Map::new();
    if minor >= APPARMOR_FIELD_MINOR {
        security.insert("appArmorProfile".into(), json!({ "type": "Unconfined" }));
    } else {
        for container in containers {
            annotations.insert(
                format!("container.apparmor.security.beta.kubernetes.io/{container}"),
                json!("unconfined"),
            );
        }
    }
    (annotations, security)
}

/// The pod templates of a workload object (Deployment, DaemonSet,
/// StatefulSet, Job: `spec.template`), if it has one.
fn pod_spec(object: &Value) -> Option<&Value> {
    object.pointer("/spec/template/spec")
}

/// Every image the objects' pod templates reference (containers and init
/// containers), first occurrence first, without repeats.
pub fn images(objects: &[Value]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for spec in objects.iter().filter_map(pod_spec) {
        for list in ["initContainers", "containers"] {
            let containers = spec.get(list).and_then(Value::as_array);
            for image in containers
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("image").and_then(Value::as_str))
            {
                if !found.iter().any(|i| i == image) {
                    found.push(image.to_owned());
                }
            }
        }
    }
    found
}

/// The objects as one YAML stream: each document starts with `---`, and
/// `apiVersion`, `kind`, `metadata` lead it.
pub fn yaml_stream(objects: &[Value]) -> String {
    const LEADING: [&str; 3] = ["apiVersion", "kind", "metadata"];
    let mut out = String::new();
    for object in objects {
        let mut ordered = serde_yaml::Mapping::new();
        if let Some(fields) = object.as_object() {
            let leading = LEADING.iter().filter_map(|k| fields.get_key_value(*k));
            let rest = fields
                .iter()
                .filter(|(k, _)| !LEADING.contains(&k.as_str()));
            for (key, value) in leading.chain(rest) {
                let value = serde_yaml::to_value(value).expect("JSON values are valid YAML");
                ordered.insert(serde_yaml::Value::String(key.clone()), value);
            }
        }
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&ordered).expect("a mapping serializes"));
    }
    out
}
