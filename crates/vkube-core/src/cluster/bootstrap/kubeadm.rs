//! kubeadm configuration: `InitConfiguration` plus `ClusterConfiguration`
//! for the first control-plane node, and `JoinConfiguration` for further
//! control-plane nodes and for workers.
//!
//! The config API follows the Kubernetes minor: `kubeadm.k8s.io/v1beta3`
//! up to 1.30, `v1beta4` from 1.31 (where v1beta3 is deprecated). Of the
//! v1beta4 changes, the one that touches what vkube renders is that
//! `extraArgs` (API server, controller manager, scheduler, etcd) and
//! `nodeRegistration.kubeletExtraArgs` became lists of `{name, value}`
//! instead of string maps ([`ExtraArgs`]). The rest of v1beta4 (the
//! `timeouts` block replacing `apiServer.timeoutForControlPlane` and
//! `discovery.timeout`, `encryptionAlgorithm`, certificate validity
//! periods, `dns.disabled`/`proxy.disabled`, `imagePullSerial`, `dryRun`,
//! `extraEnvs`) is left at kubeadm's defaults, so neither version carries a
//! field the other lacks.
//!
//! Control-plane nodes join with pre-placed CAs (written by the bootstrap
//! files), so no `certificateKey` or `--upload-certs` is involved. Every
//! kubelet runs with `cloud-provider: external` for the vSphere CPI and a
//! fixed `node-ip` (the lease's address, or with DHCP the one the
//! bootstrap script detects and substitutes for
//! [`NODE_IP_PLACEHOLDER`](super::NODE_IP_PLACEHOLDER)): without it the
//! kubelet leaves the node without addresses until the CPI runs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::NodeBootstrap;
use crate::cluster::error::Error;
use crate::cluster::plan::NodeRole;
use crate::cluster::spec::Taint;
use crate::cluster::values::KubernetesVersion;

/// kubeadm config API up to Kubernetes 1.30.
pub const V1BETA3: &str = "kubeadm.k8s.io/v1beta3";
/// kubeadm config API from Kubernetes 1.31.
pub const V1BETA4: &str = "kubeadm.k8s.io/v1beta4";
/// First minor rendered with [`V1BETA4`].
pub const FIRST_V1BETA4_MINOR: u64 = 31;
/// containerd's CRI socket.
pub const CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";

/// The kubeadm config API rendered for `version`.
pub fn api_version(version: &KubernetesVersion) -> &'static str {
    if version.minor() >= FIRST_V1BETA4_MINOR {
        V1BETA4
    } else {
        V1BETA3
    }
}

/// One v1beta4 extra argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arg {
    /// Flag name without dashes.
    pub name: String,
    /// Flag value.
    pub value: String,
}

/// Extra flags of a component: a string map in v1beta3, a list of
/// [`Arg`]s in v1beta4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ExtraArgs {
    /// v1beta3.
    Map(BTreeMap<String, String>),
    /// v1beta4.
    List(Vec<Arg>),
}

impl ExtraArgs {
    /// `args` in the shape of `api_version`, sorted by name.
    pub fn new(api_version: &str, args: BTreeMap<String, String>) -> ExtraArgs {
        if api_version == V1BETA3 {
            ExtraArgs::Map(args)
        } else {
            ExtraArgs::List(
                args.into_iter()
                    .map(|(name, value)| Arg { name, value })
                    .collect(),
            )
        }
    }

    /// The value of flag `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        match self {
            ExtraArgs::Map(map) => map.get(name).map(String::as_str),
            ExtraArgs::List(list) => list
                .iter()
                .find(|arg| arg.name == name)
                .map(|arg| arg.value.as_str()),
        }
    }

    /// Whether no flag is set.
    pub fn is_empty(&self) -> bool {
        match self {
            ExtraArgs::Map(map) => map.is_empty(),
            ExtraArgs::List(list) => list.is_empty(),
        }
    }
}

/// kubeadm `BootstrapToken`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapTokenConfig {
    /// `abcdef.0123456789abcdef`.
    pub token: String,
    /// Shown by `kubeadm token list`.
    pub description: String,
    /// Lifetime after `kubeadm init`, as a Go duration (`24h0m0s`).
    pub ttl: String,
    /// Groups the token authenticates as.
    pub groups: Vec<String>,
    /// `signing`, `authentication`.
    pub usages: Vec<String>,
}

/// kubeadm `APIEndpoint`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiEndpoint {
    /// Address the API server advertises: the node's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise_address: Option<String>,
    /// 6443.
    pub bind_port: u16,
}

/// kubeadm `NodeRegistrationOptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRegistration {
    /// Node name.
    pub name: String,
    /// CRI socket.
    pub cri_socket: String,
    /// Extra kubelet flags (`cloud-provider`, `node-ip`, `node-labels`).
    pub kubelet_extra_args: ExtraArgs,
    /// Taints; `None` lets kubeadm apply its control-plane default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taints: Option<Vec<Taint>>,
    /// Preflight errors to ignore.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_preflight_errors: Vec<String>,
}

/// kubeadm `InitConfiguration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitConfiguration {
    /// [`V1BETA3`] or [`V1BETA4`].
    pub api_version: String,
    /// `InitConfiguration`.
    pub kind: String,
    /// The join token, created by `kubeadm init`.
    pub bootstrap_tokens: Vec<BootstrapTokenConfig>,
    /// This node's API endpoint.
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
    /// Node registration.
    pub node_registration: NodeRegistration,
}

/// kubeadm `Networking`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Networking {
    /// Pod CIDR.
    pub pod_subnet: String,
    /// Service CIDR.
    pub service_subnet: String,
    /// `cluster.local`.
    pub dns_domain: String,
}

/// Extra flags of one control-plane component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ControlPlaneComponent {
    /// Extra flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_args: Option<ExtraArgs>,
    /// Extra SANs (API server only).
    #[serde(default, rename = "certSANs", skip_serializing_if = "Vec::is_empty")]
    pub cert_sans: Vec<String>,
}

/// kubeadm `DNS`: where CoreDNS comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dns {
    /// Repository holding `coredns:<tag>`.
    pub image_repository: String,
}

/// kubeadm `ClusterConfiguration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfiguration {
    /// [`V1BETA3`] or [`V1BETA4`].
    pub api_version: String,
    /// `ClusterConfiguration`.
    pub kind: String,
    /// Cluster name.
    pub cluster_name: String,
    /// Kubernetes version.
    pub kubernetes_version: String,
    /// `VIP:6443`.
    pub control_plane_endpoint: String,
    /// Where control-plane, etcd, kube-proxy and pause images come from
    /// (the registry mirror); unset pulls from `registry.k8s.io`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
    /// CoreDNS image repository, set with a mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<Dns>,
    /// Pod and service networks.
    pub networking: Networking,
    /// API server options.
    pub api_server: ControlPlaneComponent,
    /// Controller manager options.
    pub controller_manager: ControlPlaneComponent,
}

/// kubeadm `BootstrapTokenDiscovery`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapTokenDiscovery {
    /// `VIP:6443`.
    pub api_server_endpoint: String,
    /// The token.
    pub token: String,
    /// `sha256:` pins of the cluster CA's public key.
    pub ca_cert_hashes: Vec<String>,
}

/// kubeadm `Discovery`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Discovery {
    /// Token discovery.
    pub bootstrap_token: BootstrapTokenDiscovery,
}

/// kubeadm `JoinControlPlane`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinControlPlane {
    /// This node's API endpoint.
    #[serde(rename = "localAPIEndpoint")]
    pub local_api_endpoint: ApiEndpoint,
}

/// kubeadm `JoinConfiguration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinConfiguration {
    /// [`V1BETA3`] or [`V1BETA4`].
    pub api_version: String,
    /// `JoinConfiguration`.
    pub kind: String,
    /// How to find and trust the cluster.
    pub discovery: Discovery,
    /// Node registration.
    pub node_registration: NodeRegistration,
    /// Set for control-plane nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<JoinControlPlane>,
}

/// `duration` the way Go's `time.Duration` prints it (what kubeadm's
/// `metav1.Duration` fields read): `24h0m0s`, `1h30m0s`, `2m0s`, `45s`.
/// Sub-second parts are dropped.
pub fn go_duration(duration: Duration) -> String {
    let total = duration.as_secs();
    let (hours, minutes, seconds) = (total / 3600, total / 60 % 60, total % 60);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// The kubeadm config file of a node: `InitConfiguration` and
/// `ClusterConfiguration` documents for [`NodeRole::Init`], one
/// `JoinConfiguration` otherwise, in the config API of the spec's
/// Kubernetes minor. With DHCP it holds
/// [`NODE_IP_PLACEHOLDER`](super::NODE_IP_PLACEHOLDER), which the
/// bootstrap script replaces. Secret (holds the token).
pub fn render(input: &NodeBootstrap<'_>) -> Result<String, Error> {
    let spec = input.spec;
    let api = api_version(spec.kubernetes_version());
    let node_ip = input.node_ip()?;
    let advertise = ApiEndpoint {
        advertise_address: Some(node_ip.clone()),
        bind_port: super::API_SERVER_PORT,
    };
    let mut kubelet_args = BTreeMap::from([
        ("cloud-provider".to_owned(), "external".to_owned()),
        ("node-ip".to_owned(), node_ip),
    ]);
    let (taints, mut ignore) = match input.role {
        // kubeadm adds its control-plane taint when none are given.
        NodeRole::Init | NodeRole::ControlPlane => (
            None,
            vec!["DirAvailable--etc-kubernetes-manifests".to_owned()],
        ),
        NodeRole::Worker => {
            let pool = spec
                .node_pools()
                .iter()
                .find(|p| p.name().as_str() == input.group);
            if let Some(pool) = pool.filter(|p| !p.labels().is_empty()) {
                let labels: Vec<String> = pool
                    .labels()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                kubelet_args.insert("node-labels".into(), labels.join(","));
            }
            (
                Some(pool.map(|p| p.taints().to_vec()).unwrap_or_default()),
                Vec::new(),
            )
        }
    };
    ignore.sort();
    let registration = NodeRegistration {
        name: input.node.to_owned(),
        cri_socket: CRI_SOCKET.into(),
        kubelet_extra_args: ExtraArgs::new(api, kubelet_args),
        taints,
        ignore_preflight_errors: ignore,
    };
    let yaml = |value: &dyn erased::Yaml| value.to_yaml();
    if input.role == NodeRole::Init {
        if input.token_ttl.as_secs() == 0 {
            return Err(input.invalid(
                "the bootstrap token TTL must be at least one second (`0s` would never expire)"
                    .into(),
            ));
        }
        let init = InitConfiguration {
            api_version: api.into(),
            kind: "InitConfiguration".into(),
            bootstrap_tokens: vec![BootstrapTokenConfig {
                token: input.token.to_string(),
                description: "vkube: joins nodes of this cluster".into(),
                ttl: go_duration(input.token_ttl),
                groups: vec!["system:bootstrappers:kubeadm:default-node-token".into()],
                usages: vec!["signing".into(), "authentication".into()],
            }],
            local_api_endpoint: advertise,
            node_registration: registration,
        };
        let mirror = spec.registry().map(|r| r.mirror());
        let cluster = ClusterConfiguration {
            api_version: api.into(),
            kind: "ClusterConfiguration".into(),
            cluster_name: spec.name().to_string(),
            kubernetes_version: spec.kubernetes_version().to_string(),
            control_plane_endpoint: input.endpoint(),
            // kubeadm pulls `<repo>/coredns:<tag>` from a custom
            // repository (the `coredns/` level exists only on
            // registry.k8s.io): point it at `<mirror>/coredns` so CoreDNS
            // is `<mirror>/coredns/coredns`, as `addons::image` maps it.
            dns: mirror.as_ref().map(|mirror| Dns {
                image_repository: format!("{mirror}/coredns"),
            }),
            image_repository: mirror,
            networking: Networking {
                pod_subnet: spec.pod_cidr().to_string(),
                service_subnet: spec.service_cidr().to_string(),
                dns_domain: "cluster.local".into(),
            },
            api_server: ControlPlaneComponent {
                extra_args: None,
                cert_sans: vec![input.vip.to_string()],
            },
            controller_manager: ControlPlaneComponent {
                extra_args: Some(ExtraArgs::new(
                    api,
                    BTreeMap::from([("cloud-provider".to_owned(), "external".to_owned())]),
                )),
                cert_sans: Vec::new(),
            },
        };
        Ok(format!("{}---\n{}", yaml(&init), yaml(&cluster)))
    } else {
        let join = JoinConfiguration {
            api_version: api.into(),
            kind: "JoinConfiguration".into(),
            discovery: Discovery {
                bootstrap_token: BootstrapTokenDiscovery {
                    api_server_endpoint: input.endpoint(),
                    token: input.token.to_string(),
                    ca_cert_hashes: vec![input.pki.ca.cert_hash()?],
                },
            },
            node_registration: registration,
            control_plane: (input.role == NodeRole::ControlPlane).then_some(JoinControlPlane {
                local_api_endpoint: advertise,
            }),
        };
        Ok(yaml(&join))
    }
}

mod erased {
    /// Serializes any of the config structs (a local stand-in for
    /// `dyn Serialize`, which is not object safe).
    pub trait Yaml {
        fn to_yaml(&self) -> String;
    }

    impl<T: serde::Serialize> Yaml for T {
        fn to_yaml(&self) -> String {
            serde_yaml::to_string(self).expect("plain structs serialize")
        }
    }
}
