//! Pods: the spec, the template workloads stamp pods from, scheduling
//! (affinity, tolerations), security settings and volumes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::container::Container;
use super::meta::Labels;

/// Label kubeadm puts on control-plane nodes.
const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// Kubernetes minor from which a pod's AppArmor profile is a
/// `securityContext.appArmorProfile` field (GA in 1.30); before it, only
/// the `container.apparmor.security.beta.kubernetes.io/<container>`
/// annotation exists.
const APPARMOR_FIELD_MINOR: u64 = 30;

/// A pod's spec.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodSpec {
    /// The pod's ServiceAccount.
    pub service_account_name: String,
    /// Whether the ServiceAccount token is mounted (stated explicitly by
    /// pods that talk to the API).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    /// `system-node-critical` or `system-cluster-critical`.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub priority_class_name: &'static str,
    /// Run in the node's network namespace.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
    /// `Default` (the node's resolver) or `ClusterFirstWithHostNet`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<&'static str>,
    /// `Always`, stated explicitly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<&'static str>,
    /// Seconds between SIGTERM and SIGKILL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<u32>,
    /// Nodes the pod may run on, by label.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<&'static str, &'static str>,
    /// Node and pod (anti-)affinity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Taints the pod tolerates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Pod-level security settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    /// Containers run to completion, in order, before `containers` start.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub init_containers: Vec<Container>,
    /// The containers.
    pub containers: Vec<Container>,
    /// The volumes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

/// `nodeSelector` for Linux nodes only.
pub(crate) fn linux_nodes() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([("kubernetes.io/os", "linux")])
}

/// The pods a workload stamps out, and the labels it selects them by.
#[derive(Debug, Serialize)]
pub(crate) struct PodTemplate {
    #[serde(skip)]
    selector: Labels,
    metadata: TemplateMeta,
    spec: PodSpec,
}

#[derive(Debug, Serialize)]
struct TemplateMeta {
    labels: Labels,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

impl PodTemplate {
    /// Pods of `spec`, labelled with `selector` and selected by it.
    pub(crate) fn new(selector: Labels, spec: PodSpec) -> PodTemplate {
        PodTemplate {
            metadata: TemplateMeta {
                labels: selector.clone(),
                annotations: BTreeMap::new(),
            },
            selector,
            spec,
        }
    }

    /// Pods of `component`: selected by its `app.kubernetes.io/name`,
    /// labelled managed by vkube as well.
    pub(crate) fn of_component(component: &str, spec: PodSpec) -> PodTemplate {
        PodTemplate::new(Labels::named(component), spec).labels(&Labels::managed())
    }

    /// With more labels on the pods (not part of the selector).
    pub(crate) fn labels(mut self, extra: &Labels) -> PodTemplate {
        self.metadata.labels = self.metadata.labels.merged(extra);
        self
    }

    /// With one more annotation on the pods.
    pub(crate) fn annotation(mut self, key: &str, value: &str) -> PodTemplate {
        self.metadata
            .annotations
            .insert(key.to_owned(), value.to_owned());
        self
    }

    /// Unconfined AppArmor for `containers` on Kubernetes `minor`: the
    /// pod-level `securityContext.appArmorProfile` from 1.30, the
    /// per-container beta annotations before.
    pub(crate) fn apparmor_unconfined(mut self, minor: u64, containers: &[&str]) -> PodTemplate {
        if minor >= APPARMOR_FIELD_MINOR {
            self.spec
                .security_context
                .get_or_insert_with(SecurityContext::default)
                .app_armor_profile = Some(Profile::unconfined());
        } else {
            for container in containers {
                self = self.annotation(
                    &format!("container.apparmor.security.beta.kubernetes.io/{container}"),
                    "unconfined",
                );
            }
        }
        self
    }

    /// The labels the workload selects its pods by.
    pub(super) fn selector(&self) -> &Labels {
        &self.selector
    }
}

/// Scheduling constraints.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Affinity {
    #[serde(skip_serializing_if = "Option::is_none")]
    node_affinity: Option<NodeAffinity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pod_anti_affinity: Option<PodAntiAffinity>,
}

#[derive(Debug, Serialize)]
struct NodeAffinity {
    #[serde(rename = "requiredDuringSchedulingIgnoredDuringExecution")]
    required: NodeSelector,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeSelector {
    node_selector_terms: Vec<NodeSelectorTerm>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct NodeSelectorTerm {
    match_expressions: Vec<Expression>,
}

#[derive(Debug, Serialize)]
struct Expression {
    key: &'static str,
    operator: &'static str,
}

#[derive(Debug, Default, Serialize)]
struct PodAntiAffinity {
    #[serde(
        rename = "requiredDuringSchedulingIgnoredDuringExecution",
        skip_serializing_if = "Vec::is_empty"
    )]
    required: Vec<PodAffinityTerm>,
    #[serde(
        rename = "preferredDuringSchedulingIgnoredDuringExecution",
        skip_serializing_if = "Vec::is_empty"
    )]
    preferred: Vec<WeightedTerm>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WeightedTerm {
    weight: u32,
    pod_affinity_term: PodAffinityTerm,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PodAffinityTerm {
    label_selector: Selector,
    topology_key: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    match_labels: Labels,
}

impl PodAffinityTerm {
    /// Pods labelled `selector` on the same node.
    fn same_node(selector: &Labels) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: Selector {
                match_labels: selector.clone(),
            },
            topology_key: "kubernetes.io/hostname",
        }
    }
}

impl Affinity {
    /// Only on control-plane nodes.
    pub(crate) fn on_control_plane(mut self) -> Affinity {
        self.node_affinity = Some(NodeAffinity {
            required: NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: vec![Expression {
                        key: CONTROL_PLANE_LABEL,
                        operator: "Exists",
                    }],
                }],
            },
        });
        self
    }

    /// Preferably not on a node that already runs a pod labelled
    /// `selector`.
    pub(crate) fn prefer_spread(mut self, selector: &Labels) -> Affinity {
        self.pod_anti_affinity
            .get_or_insert_with(PodAntiAffinity::default)
            .preferred
            .push(WeightedTerm {
                weight: 100,
                pod_affinity_term: PodAffinityTerm::same_node(selector),
            });
        self
    }

    /// Never on a node that already runs a pod labelled `selector`.
    pub(crate) fn require_spread(mut self, selector: &Labels) -> Affinity {
        self.pod_anti_affinity
            .get_or_insert_with(PodAntiAffinity::default)
            .required
            .push(PodAffinityTerm::same_node(selector));
        self
    }
}

/// A taint toleration.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Toleration {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'static str>,
    operator: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    effect: Option<&'static str>,
}

impl Toleration {
    /// Tolerates taint `key` with `effect`, whatever its value.
    pub(crate) fn exists(key: &'static str, effect: &'static str) -> Toleration {
        Toleration {
            key: Some(key),
            operator: "Exists",
            effect: Some(effect),
        }
    }

    /// Tolerates taint `key` with any effect and value.
    pub(crate) fn key(key: &'static str) -> Toleration {
        Toleration {
            key: Some(key),
            operator: "Exists",
            effect: None,
        }
    }

    /// Tolerates every taint with `effect`.
    pub(crate) fn any(effect: &'static str) -> Toleration {
        Toleration {
            key: None,
            operator: "Exists",
            effect: Some(effect),
        }
    }

    /// Tolerates every taint: for node agents (CNI, CSI node plugin) that
    /// must run on every node, whatever taints the cluster or its users put
    /// there — including `node.kubernetes.io/not-ready`,
    /// `node.kubernetes.io/unreachable`,
    /// `node.cloudprovider.kubernetes.io/uninitialized` and the
    /// control-plane taint.
    pub(crate) fn everything() -> Toleration {
        Toleration {
            key: None,
            operator: "Exists",
            effect: None,
        }
    }
}

/// Security settings of a pod or container (the subset vkube uses; valid
/// on both levels except `privileged`, `allowPrivilegeEscalation` and
/// `capabilities`, which only containers have).
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecurityContext {
    /// Run as this user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    /// Run as this group id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
    /// Refuse to start as root.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// Full access to the host's devices (container only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// May gain privileges (container only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    /// Capabilities added and dropped (container only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    /// SELinux context.
    #[serde(rename = "seLinuxOptions", skip_serializing_if = "Option::is_none")]
    pub se_linux_options: Option<SeLinuxOptions>,
    /// Seccomp filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<Profile>,
    /// AppArmor profile (a field from Kubernetes 1.30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_armor_profile: Option<Profile>,
}

impl SecurityContext {
    /// A privileged container.
    pub(crate) fn privileged() -> SecurityContext {
        SecurityContext {
            privileged: Some(true),
            ..SecurityContext::default()
        }
    }
}

/// Linux capabilities to add and drop.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct Capabilities {
    /// e.g. `SYS_ADMIN`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<&'static str>,
    /// e.g. `ALL`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drop: Vec<&'static str>,
}

/// An SELinux context.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SeLinuxOptions {
    /// e.g. `s0`.
    pub level: &'static str,
    /// e.g. `spc_t`.
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// A seccomp or AppArmor profile.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Profile {
    #[serde(rename = "type")]
    kind: &'static str,
}

impl Profile {
    /// The container runtime's default.
    pub(crate) fn runtime_default() -> Profile {
        Profile {
            kind: "RuntimeDefault",
        }
    }

    /// No filter.
    pub(crate) fn unconfined() -> Profile {
        Profile { kind: "Unconfined" }
    }
}

/// A pod volume.
#[derive(Debug, Serialize)]
pub(crate) struct Volume {
    name: &'static str,
    #[serde(flatten)]
    source: VolumeSource,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum VolumeSource {
    HostPath {
        path: &'static str,
        #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
        kind: Option<&'static str>,
    },
    #[serde(rename_all = "camelCase")]
    Secret {
        secret_name: &'static str,
    },
    ConfigMap {
        name: &'static str,
    },
    EmptyDir {},
}

impl Volume {
    /// Host path `path`; `kind` is the hostPath type (`Directory`,
    /// `DirectoryOrCreate`, `FileOrCreate`, …) or `None` for no check
    /// (device trees like `/dev`).
    pub(crate) fn host_path(
        name: &'static str,
        path: &'static str,
        kind: Option<&'static str>,
    ) -> Volume {
        Volume {
            name,
            source: VolumeSource::HostPath { path, kind },
        }
    }

    /// The keys of Secret `secret` as files.
    pub(crate) fn secret(name: &'static str, secret: &'static str) -> Volume {
        Volume {
            name,
            source: VolumeSource::Secret {
                secret_name: secret,
            },
        }
    }

    /// The keys of ConfigMap `config_map` as files.
    pub(crate) fn config_map(name: &'static str, config_map: &'static str) -> Volume {
        Volume {
            name,
            source: VolumeSource::ConfigMap { name: config_map },
        }
    }

    /// A scratch directory living as long as the pod.
    pub(crate) fn empty_dir(name: &'static str) -> Volume {
        Volume {
            name,
            source: VolumeSource::EmptyDir {},
        }
    }
}
