//! The Kubernetes objects the vSphere add-ons are made of, as typed structs
//! serialized to YAML, and [`Stream`], the multi-document YAML they are
//! written into. Only the fields vkube sets exist; everything optional is
//! left out of the output when unset, so the rendered objects are small and
//! pass `kubernetes-validate --strict`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Serialize;

/// Label every object vkube renders carries.
pub(crate) const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "vkube");
/// Label naming the component an object belongs to (also the pod selector).
pub(crate) const NAME_LABEL: &str = "app.kubernetes.io/name";

/// `metadata` of an object.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Meta {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

impl Meta {
    /// A cluster-scoped object of `component`.
    pub(crate) fn cluster(name: &str, component: &str) -> Meta {
        Meta {
            name: name.to_owned(),
            namespace: None,
            labels: BTreeMap::from([
                (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                (NAME_LABEL.to_owned(), component.to_owned()),
            ]),
            annotations: BTreeMap::new(),
        }
    }

    /// A namespaced object of `component`.
    pub(crate) fn namespaced(name: &str, namespace: &str, component: &str) -> Meta {
        Meta {
            namespace: Some(namespace.to_owned()),
            ..Meta::cluster(name, component)
        }
    }

    /// With one more label.
    pub(crate) fn label(mut self, key: &str, value: &str) -> Meta {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// With one more annotation.
    pub(crate) fn annotation(mut self, key: &str, value: &str) -> Meta {
        self.annotations.insert(key.to_owned(), value.to_owned());
        self
    }
}

/// One object: `apiVersion`, `kind`, `metadata` and the kind's own fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Object<B: Serialize> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta,
    #[serde(flatten)]
    body: B,
}

/// Kinds without fields of their own (ServiceAccount, Namespace).
#[derive(Debug, Serialize)]
pub(crate) struct NoBody {}

/// `data` of a ConfigMap.
#[derive(Debug, Serialize)]
pub(crate) struct ConfigMapBody {
    data: BTreeMap<String, String>,
}

/// An opaque Secret. `data` (base64), not `stringData`: a key dropped from
/// a later version is then also dropped by `kubectl apply`.
#[derive(Serialize)]
pub(crate) struct SecretBody {
    #[serde(rename = "type")]
    kind: &'static str,
    data: BTreeMap<String, String>,
}

/// Rules of a Role or ClusterRole.
#[derive(Debug, Serialize)]
pub(crate) struct RulesBody {
    rules: Vec<Rule>,
}

/// One RBAC rule.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Rule {
    api_groups: Vec<&'static str>,
    resources: Vec<&'static str>,
    verbs: Vec<&'static str>,
}

/// `rule(&[""], &["nodes"], &["get"])`.
pub(crate) fn rule(
    api_groups: &[&'static str],
    resources: &[&'static str],
    verbs: &[&'static str],
) -> Rule {
    Rule {
        api_groups: api_groups.to_vec(),
        resources: resources.to_vec(),
        verbs: verbs.to_vec(),
    }
}

/// `roleRef` and `subjects` of a (Cluster)RoleBinding.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BindingBody {
    role_ref: RoleRef,
    subjects: Vec<Subject>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RoleRef {
    api_group: &'static str,
    kind: &'static str,
    name: String,
}

#[derive(Debug, Serialize)]
struct Subject {
    kind: &'static str,
    name: String,
    namespace: String,
}

/// Objects with a `spec`.
#[derive(Debug, Serialize)]
pub(crate) struct SpecBody<S: Serialize> {
    spec: S,
}

/// `spec` of a CSIDriver.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CsiDriverSpec {
    /// Volumes are attached (ControllerPublish) before they are mounted.
    pub attach_required: bool,
    /// The driver needs no pod information on mount.
    pub pod_info_on_mount: bool,
}

/// A StorageClass's fields (it has no `spec`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StorageClassBody {
    /// CSI driver name.
    pub provisioner: &'static str,
    /// Driver parameters.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<&'static str, String>,
    /// `Delete` or `Retain`.
    pub reclaim_policy: &'static str,
    /// `Immediate` or `WaitForFirstConsumer`.
    pub volume_binding_mode: &'static str,
    /// Whether PVCs may grow.
    pub allow_volume_expansion: bool,
}

/// `spec` of a DaemonSet.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DaemonSetSpec {
    selector: Selector,
    update_strategy: UpdateStrategy,
    template: PodTemplate,
}

/// `spec` of a Deployment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeploymentSpec {
    replicas: u32,
    selector: Selector,
    strategy: UpdateStrategy,
    template: PodTemplate,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct UpdateStrategy {
    #[serde(rename = "type")]
    kind: &'static str,
    rolling_update: RollingUpdate,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RollingUpdate {
    max_unavailable: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_surge: Option<u32>,
}

#[derive(Debug, Serialize)]
struct PodTemplate {
    metadata: TemplateMeta,
    spec: PodSpec,
}

#[derive(Debug, Serialize)]
struct TemplateMeta {
    labels: BTreeMap<String, String>,
}

/// A pod's spec.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodSpec {
    /// The pod's ServiceAccount.
    pub service_account_name: String,
    /// `system-node-critical` or `system-cluster-critical`.
    pub priority_class_name: &'static str,
    /// Run in the node's network namespace.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub host_network: bool,
    /// `Default` (the node's resolver) or `ClusterFirstWithHostNet`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_policy: Option<&'static str>,
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
    /// The containers.
    pub containers: Vec<Container>,
    /// The volumes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
}

/// Scheduling constraints.
#[derive(Debug, Serialize)]
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

#[derive(Debug, Serialize)]
struct PodAntiAffinity {
    #[serde(rename = "preferredDuringSchedulingIgnoredDuringExecution")]
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

/// Label kubeadm puts on control-plane nodes.
pub(crate) const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

impl Affinity {
    /// Only on control-plane nodes; replicas of `component` preferably on
    /// different nodes when `spread` is set.
    pub(crate) fn control_plane(component: &str, spread: bool) -> Affinity {
        Affinity {
            node_affinity: Some(NodeAffinity {
                required: NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: vec![Expression {
                            key: CONTROL_PLANE_LABEL,
                            operator: "Exists",
                        }],
                    }],
                },
            }),
            pod_anti_affinity: spread.then(|| PodAntiAffinity {
                preferred: vec![WeightedTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Selector {
                            match_labels: selector_labels(component),
                        },
                        topology_key: "kubernetes.io/hostname",
                    },
                }],
            }),
        }
    }
}

/// A taint toleration.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Toleration {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'static str>,
    operator: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effect: Option<&'static str>,
}

impl Toleration {
    /// Tolerates taint `key` with `effect`, whatever its value.
    pub(crate) fn exists(key: &'static str, effect: &'static str) -> Toleration {
        Toleration {
            key: Some(key),
            operator: "Exists",
            value: None,
            effect: Some(effect),
        }
    }

    /// Tolerates every taint with `effect`.
    pub(crate) fn any(effect: &'static str) -> Toleration {
        Toleration {
            key: None,
            operator: "Exists",
            value: None,
            effect: Some(effect),
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
    /// Extra capabilities (container only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
}

/// Linux capabilities to add.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Capabilities {
    /// e.g. `SYS_ADMIN`.
    pub add: Vec<&'static str>,
}

/// One container.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Container {
    name: &'static str,
    image: String,
    image_pull_policy: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<EnvVar>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<ContainerPort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    liveness_probe: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Resources>,
    #[serde(skip_serializing_if = "Option::is_none")]
    security_context: Option<SecurityContext>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volume_mounts: Vec<VolumeMount>,
}

impl Container {
    /// Container `name` running `image` (already mirrored). Pinned tags
    /// never change, so an image present on the node is used as is: nodes
    /// of an air-gapped cluster do not need the registry on every restart.
    pub(crate) fn new(name: &'static str, image: String) -> Container {
        Container {
            name,
            image,
            image_pull_policy: "IfNotPresent",
            args: Vec::new(),
            env: Vec::new(),
            ports: Vec::new(),
            liveness_probe: None,
            resources: None,
            security_context: None,
            volume_mounts: Vec::new(),
        }
    }

    /// With these arguments.
    pub(crate) fn args<S: AsRef<str>>(mut self, args: &[S]) -> Container {
        self.args
            .extend(args.iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// With environment variable `name` set to `value`.
    pub(crate) fn env(mut self, name: &'static str, value: &str) -> Container {
        self.env.push(EnvVar {
            name,
            value: Some(value.to_owned()),
            value_from: None,
        });
        self
    }

    /// With environment variable `name` set from the pod's field `path`.
    pub(crate) fn env_field(mut self, name: &'static str, path: &'static str) -> Container {
        self.env.push(EnvVar {
            name,
            value: None,
            value_from: Some(EnvSource {
                field_ref: FieldRef { field_path: path },
            }),
        });
        self
    }

    /// Listening on TCP `port`, named `name`.
    pub(crate) fn port(mut self, name: &'static str, port: u16) -> Container {
        self.ports.push(ContainerPort {
            name,
            container_port: port,
            protocol: "TCP",
        });
        self
    }

    /// With this liveness probe.
    pub(crate) fn liveness(mut self, probe: Probe) -> Container {
        self.liveness_probe = Some(probe);
        self
    }

    /// Requesting `cpu` and `memory`.
    pub(crate) fn requests(mut self, cpu: &'static str, memory: &'static str) -> Container {
        self.resources = Some(Resources {
            requests: BTreeMap::from([("cpu", cpu), ("memory", memory)]),
        });
        self
    }

    /// With this security context.
    pub(crate) fn security(mut self, context: SecurityContext) -> Container {
        self.security_context = Some(context);
        self
    }

    /// Mounting volume `name` at `path`.
    pub(crate) fn mount(self, name: &'static str, path: &'static str) -> Container {
        self.mount_with(name, path, false, None)
    }

    /// Mounting volume `name` at `path` read-only.
    pub(crate) fn mount_read_only(self, name: &'static str, path: &'static str) -> Container {
        self.mount_with(name, path, true, None)
    }

    /// Mounting volume `name` at `path` with mounts made inside propagated
    /// back to the host (`Bidirectional`; privileged containers only).
    pub(crate) fn mount_bidirectional(self, name: &'static str, path: &'static str) -> Container {
        self.mount_with(name, path, false, Some("Bidirectional"))
    }

    fn mount_with(
        mut self,
        name: &'static str,
        path: &'static str,
        read_only: bool,
        propagation: Option<&'static str>,
    ) -> Container {
        self.volume_mounts.push(VolumeMount {
            name,
            mount_path: path,
            read_only,
            mount_propagation: propagation,
        });
        self
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvVar {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value_from: Option<EnvSource>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvSource {
    field_ref: FieldRef,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct FieldRef {
    field_path: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerPort {
    name: &'static str,
    container_port: u16,
    protocol: &'static str,
}

#[derive(Debug, Serialize)]
struct Resources {
    requests: BTreeMap<&'static str, &'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VolumeMount {
    name: &'static str,
    mount_path: &'static str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    read_only: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    mount_propagation: Option<&'static str>,
}

/// A liveness probe.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Probe {
    #[serde(skip_serializing_if = "Option::is_none")]
    http_get: Option<HttpGet>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exec: Option<Exec>,
    initial_delay_seconds: u32,
    timeout_seconds: u32,
    period_seconds: u32,
    failure_threshold: u32,
}

#[derive(Debug, Serialize)]
struct HttpGet {
    path: &'static str,
    port: &'static str,
}

#[derive(Debug, Serialize)]
struct Exec {
    command: Vec<String>,
}

/// How often and how patiently a probe checks: initial delay, timeout,
/// period (seconds) and failures tolerated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProbeTiming {
    /// Seconds before the first check.
    pub initial_delay: u32,
    /// Seconds one check may take.
    pub timeout: u32,
    /// Seconds between checks.
    pub period: u32,
    /// Failed checks before the container is restarted.
    pub failures: u32,
}

impl Probe {
    /// `GET path` on the container's port named `port`.
    pub(crate) fn http(path: &'static str, port: &'static str, timing: ProbeTiming) -> Probe {
        Probe::with(Some(HttpGet { path, port }), None, timing)
    }

    /// Running `command` in the container.
    pub(crate) fn exec(command: &[&str], timing: ProbeTiming) -> Probe {
        let command = command.iter().map(|part| part.to_string()).collect();
        Probe::with(None, Some(Exec { command }), timing)
    }

    fn with(http_get: Option<HttpGet>, exec: Option<Exec>, timing: ProbeTiming) -> Probe {
        Probe {
            http_get,
            exec,
            initial_delay_seconds: timing.initial_delay,
            timeout_seconds: timing.timeout,
            period_seconds: timing.period,
            failure_threshold: timing.failures,
        }
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
    /// Host directory `path`; `kind` is `Directory`, `DirectoryOrCreate`
    /// or `None` for no check (device trees like `/dev`).
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

/// The labels pods of `component` carry and are selected by.
fn selector_labels(component: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(NAME_LABEL.to_owned(), component.to_owned())])
}

fn template(component: &str, spec: PodSpec) -> PodTemplate {
    let mut labels = selector_labels(component);
    labels.insert(MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned());
    PodTemplate {
        metadata: TemplateMeta { labels },
        spec,
    }
}

/// A Namespace.
pub(crate) fn namespace(meta: Meta) -> Object<NoBody> {
    object("v1", "Namespace", meta, NoBody {})
}

/// A ServiceAccount.
pub(crate) fn service_account(meta: Meta) -> Object<NoBody> {
    object("v1", "ServiceAccount", meta, NoBody {})
}

/// A ConfigMap with `data`.
pub(crate) fn config_map(meta: Meta, data: BTreeMap<String, String>) -> Object<ConfigMapBody> {
    object("v1", "ConfigMap", meta, ConfigMapBody { data })
}

/// An opaque Secret holding `data` (plain values; encoded here).
pub(crate) fn secret(meta: Meta, data: &BTreeMap<String, String>) -> Object<SecretBody> {
    let data = data
        .iter()
        .map(|(key, value)| (key.clone(), STANDARD.encode(value)))
        .collect();
    object(
        "v1",
        "Secret",
        meta,
        SecretBody {
            kind: "Opaque",
            data,
        },
    )
}

/// A ClusterRole.
pub(crate) fn cluster_role(meta: Meta, rules: Vec<Rule>) -> Object<RulesBody> {
    object(RBAC, "ClusterRole", meta, RulesBody { rules })
}

/// A Role.
pub(crate) fn role(meta: Meta, rules: Vec<Rule>) -> Object<RulesBody> {
    object(RBAC, "Role", meta, RulesBody { rules })
}

const RBAC: &str = "rbac.authorization.k8s.io/v1";

/// What a binding grants.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RoleKind {
    /// A ClusterRole.
    ClusterRole,
    /// A Role in the binding's namespace.
    Role,
}

/// Binds `role` (a ClusterRole or a Role) to ServiceAccount
/// `account_namespace/account`: a ClusterRoleBinding when `meta` has no
/// namespace, else a RoleBinding.
pub(crate) fn binding(
    meta: Meta,
    role: (RoleKind, &str),
    account: &str,
    account_namespace: &str,
) -> Object<BindingBody> {
    let kind = if meta.namespace.is_some() {
        "RoleBinding"
    } else {
        "ClusterRoleBinding"
    };
    let role_kind = match role.0 {
        RoleKind::ClusterRole => "ClusterRole",
        RoleKind::Role => "Role",
    };
    object(
        RBAC,
        kind,
        meta,
        BindingBody {
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io",
                kind: role_kind,
                name: role.1.to_owned(),
            },
            subjects: vec![Subject {
                kind: "ServiceAccount",
                name: account.to_owned(),
                namespace: account_namespace.to_owned(),
            }],
        },
    )
}

/// A CSIDriver.
pub(crate) fn csi_driver(meta: Meta, spec: CsiDriverSpec) -> Object<SpecBody<CsiDriverSpec>> {
    object("storage.k8s.io/v1", "CSIDriver", meta, SpecBody { spec })
}

/// A StorageClass.
pub(crate) fn storage_class(meta: Meta, body: StorageClassBody) -> Object<StorageClassBody> {
    object("storage.k8s.io/v1", "StorageClass", meta, body)
}

/// A DaemonSet of `component` (its pods are selected by the component
/// label), replaced one node at a time.
pub(crate) fn daemon_set(
    meta: Meta,
    component: &str,
    pod: PodSpec,
) -> Object<SpecBody<DaemonSetSpec>> {
    let spec = DaemonSetSpec {
        selector: Selector {
            match_labels: selector_labels(component),
        },
        update_strategy: UpdateStrategy {
            kind: "RollingUpdate",
            rolling_update: RollingUpdate {
                max_unavailable: 1,
                max_surge: None,
            },
        },
        template: template(component, pod),
    };
    object("apps/v1", "DaemonSet", meta, SpecBody { spec })
}

/// A Deployment of `replicas` pods of `component`. Rolling updates stop
/// an old pod before starting a new one: the pods run on control-plane
/// nodes only, where there may be no room for an extra one.
pub(crate) fn deployment(
    meta: Meta,
    component: &str,
    replicas: u32,
    pod: PodSpec,
) -> Object<SpecBody<DeploymentSpec>> {
    let spec = DeploymentSpec {
        replicas,
        selector: Selector {
            match_labels: selector_labels(component),
        },
        strategy: UpdateStrategy {
            kind: "RollingUpdate",
            rolling_update: RollingUpdate {
                max_unavailable: 1,
                max_surge: Some(0),
            },
        },
        template: template(component, pod),
    };
    object("apps/v1", "Deployment", meta, SpecBody { spec })
}

fn object<B: Serialize>(
    api_version: &'static str,
    kind: &'static str,
    metadata: Meta,
    body: B,
) -> Object<B> {
    Object {
        api_version,
        kind,
        metadata,
        body,
    }
}

/// A multi-document YAML stream: a header comment, then one `---`
/// separated document per object.
#[derive(Debug, Default)]
pub(crate) struct Stream {
    text: String,
}

impl Stream {
    /// A stream starting with `header` as `#` comment lines.
    pub(crate) fn new(header: &str) -> Stream {
        let mut text = String::new();
        for line in header.lines() {
            text.push_str("# ");
            text.push_str(line);
            text.push('\n');
        }
        Stream { text }
    }

    /// Appends `object` as the next document.
    pub(crate) fn push<B: Serialize>(&mut self, object: &Object<B>) {
        self.text.push_str("---\n");
        self.text.push_str(&crate::yaml::to_string(object));
    }

    /// Appends documents already rendered as YAML text (each starting with
    /// `---`).
    pub(crate) fn push_rendered(&mut self, documents: &str) {
        self.text.push_str(documents);
    }

    /// The stream's text.
    pub(crate) fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_volume_sources_and_skipped_defaults() {
        let pod = PodSpec {
            service_account_name: "sa".into(),
            priority_class_name: "system-node-critical",
            containers: vec![Container::new("c", "img:1".into())
                .args(&["--a"])
                .mount_read_only("cfg", "/etc/cloud")],
            volumes: vec![
                Volume::host_path("dev", "/dev", None),
                Volume::secret("cfg", "s"),
                Volume::empty_dir("tmp"),
            ],
            ..PodSpec::default()
        };
        let mut stream = Stream::new("one\ntwo");
        stream.push(&daemon_set(
            Meta::namespaced("ds", "kube-system", "comp"),
            "comp",
            pod,
        ));
        let text = stream.finish();
        assert!(text.starts_with("# one\n# two\n---\n"), "{text}");
        let value: serde_yaml::Value =
            serde_yaml::from_str(text.split_once("---\n").unwrap().1).unwrap();
        let spec = &value["spec"]["template"]["spec"];
        assert_eq!(spec["volumes"][0]["hostPath"]["path"], "/dev");
        assert!(spec["volumes"][0]["hostPath"].get("type").is_none());
        assert_eq!(spec["volumes"][1]["secret"]["secretName"], "s");
        assert!(spec["volumes"][2]["emptyDir"]
            .as_mapping()
            .unwrap()
            .is_empty());
        assert!(spec.get("hostNetwork").is_none() && spec.get("tolerations").is_none());
        assert_eq!(spec["containers"][0]["volumeMounts"][0]["readOnly"], true);
        assert_eq!(value["spec"]["selector"]["matchLabels"][NAME_LABEL], "comp");
    }

    #[test]
    fn secrets_are_base64_and_bindings_pick_their_kind() {
        let secret = secret(
            Meta::namespaced("s", "ns", "c"),
            &BTreeMap::from([("k".to_owned(), "pässword".to_owned())]),
        );
        let text = serde_yaml::to_string(&secret).unwrap();
        assert!(!text.contains("pässword"), "{text}");
        assert!(text.contains(&STANDARD.encode("pässword")), "{text}");

        let cluster = binding(
            Meta::cluster("b", "c"),
            (RoleKind::ClusterRole, "r"),
            "sa",
            "ns",
        );
        let namespaced = binding(
            Meta::namespaced("b", "kube-system", "c"),
            (RoleKind::Role, "r"),
            "sa",
            "ns",
        );
        assert!(serde_yaml::to_string(&cluster)
            .unwrap()
            .contains("kind: ClusterRoleBinding"));
        let namespaced = serde_yaml::to_string(&namespaced).unwrap();
        assert!(namespaced.contains("kind: RoleBinding") && namespaced.contains("kind: Role\n"));
    }
}
