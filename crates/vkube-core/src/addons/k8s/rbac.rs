//! RBAC: policy rules, ClusterRoles and Roles, and their bindings.

use serde::Serialize;

use super::meta::{Meta, Object};

const API_VERSION: &str = "rbac.authorization.k8s.io/v1";
const GROUP: &str = "rbac.authorization.k8s.io";

/// Reading a kind: `get`, `list`, `watch`.
pub(crate) const READ: &[&str] = &["get", "list", "watch"];

/// Rules of a Role or ClusterRole.
#[derive(Debug, Serialize)]
pub(crate) struct RulesBody {
    rules: Vec<Rule>,
}

/// One RBAC policy rule.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rule {
    api_groups: Vec<String>,
    resources: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    resource_names: Vec<String>,
    verbs: Vec<String>,
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// `rule(&[""], &["nodes"], &["get"])`.
pub(crate) fn rule(api_groups: &[&str], resources: &[&str], verbs: &[&str]) -> Rule {
    named_rule(api_groups, resources, &[], verbs)
}

/// A rule limited to the objects named `names`.
pub(crate) fn named_rule(
    api_groups: &[&str],
    resources: &[&str],
    names: &[&str],
    verbs: &[&str],
) -> Rule {
    Rule {
        api_groups: owned(api_groups),
        resources: owned(resources),
        resource_names: owned(names),
        verbs: owned(verbs),
    }
}

/// A ClusterRole.
pub(crate) fn cluster_role(meta: Meta, rules: Vec<Rule>) -> Object<RulesBody> {
    Object::new(API_VERSION, "ClusterRole", meta, RulesBody { rules })
}

/// A Role (in `meta`'s namespace).
pub(crate) fn role(meta: Meta, rules: Vec<Rule>) -> Object<RulesBody> {
    Object::new(API_VERSION, "Role", meta, RulesBody { rules })
}

/// `roleRef` and `subjects` of a (Cluster)RoleBinding.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BindingBody {
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

/// What a binding grants.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RoleRef {
    api_group: &'static str,
    kind: &'static str,
    name: String,
}

impl RoleRef {
    /// The ClusterRole `name`.
    pub(crate) fn cluster_role(name: &str) -> RoleRef {
        RoleRef {
            api_group: GROUP,
            kind: "ClusterRole",
            name: name.to_owned(),
        }
    }

    /// The Role `name` in the binding's namespace.
    pub(crate) fn role(name: &str) -> RoleRef {
        RoleRef {
            api_group: GROUP,
            kind: "Role",
            name: name.to_owned(),
        }
    }
}

/// Whom a binding grants it to.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Subject {
    #[serde(skip_serializing_if = "Option::is_none")]
    api_group: Option<&'static str>,
    kind: &'static str,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

impl Subject {
    /// ServiceAccount `namespace/name`.
    pub(crate) fn service_account(name: &str, namespace: &str) -> Subject {
        Subject {
            api_group: None,
            kind: "ServiceAccount",
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
        }
    }

    /// The user `name` (as the API server authenticates it).
    pub(crate) fn user(name: &str) -> Subject {
        Subject {
            api_group: Some(GROUP),
            kind: "User",
            name: name.to_owned(),
            namespace: None,
        }
    }
}

/// Grants `role` to `subjects`: a ClusterRoleBinding when `meta` has no
/// namespace, else a RoleBinding.
pub(crate) fn binding(meta: Meta, role: RoleRef, subjects: Vec<Subject>) -> Object<BindingBody> {
    let kind = if meta.is_namespaced() {
        "RoleBinding"
    } else {
        "ClusterRoleBinding"
    };
    Object::new(
        API_VERSION,
        kind,
        meta,
        BindingBody {
            role_ref: role,
            subjects,
        },
    )
}
