//! kubeadm configuration (`kubeadm.k8s.io/v1beta3`): `InitConfiguration`
//! plus `ClusterConfiguration` for the first control-plane node, and
//! `JoinConfiguration` for further control-plane nodes and for workers.
//!
//! Control-plane nodes join with pre-placed CAs (written by the bootstrap
//! files), so no `certificateKey` or `--upload-certs` is involved. Every
//! kubelet runs with `cloud-provider: external` for the vSphere CPI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::NodeBootstrap;
use crate::cluster::error::Error;
use crate::cluster::plan::NodeRole;
use crate::cluster::spec::Taint;

/// kubeadm config API version rendered.
pub const API_VERSION: &str = "kubeadm.k8s.io/v1beta3";
/// containerd's CRI socket.
pub const CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";

/// kubeadm `BootstrapToken`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapTokenConfig {
    /// `abcdef.0123456789abcdef`.
    pub token: String,
    /// Shown by `kubeadm token list`.
    pub description: String,
    /// `0s`: never expires (see the module caveat in `cloud_init`).
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
    /// Address the API server advertises; omitted with DHCP (kubeadm
    /// takes the default route's address).
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
    /// Extra kubelet flags (`cloud-provider`, `node-labels`).
    pub kubelet_extra_args: BTreeMap<String, String>,
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
    /// `kubeadm.k8s.io/v1beta3`.
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
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_args: BTreeMap<String, String>,
    /// Extra SANs (API server only).
    #[serde(default, rename = "certSANs", skip_serializing_if = "Vec::is_empty")]
    pub cert_sans: Vec<String>,
}

/// kubeadm `ClusterConfiguration`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfiguration {
    /// `kubeadm.k8s.io/v1beta3`.
    pub api_version: String,
    /// `ClusterConfiguration`.
    pub kind: String,
    /// Cluster name.
    pub cluster_name: String,
    /// Kubernetes version.
    pub kubernetes_version: String,
    /// `VIP:6443`.
    pub control_plane_endpoint: String,
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
    /// `kubeadm.k8s.io/v1beta3`.
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

/// The kubeadm config file of a node: `InitConfiguration` and
/// `ClusterConfiguration` documents for [`NodeRole::Init`], one
/// `JoinConfiguration` otherwise. Secret (holds the token).
pub fn render(input: &NodeBootstrap<'_>) -> Result<String, Error> {
    let lease = input.static_lease()?;
    let spec = input.spec;
    let advertise = ApiEndpoint {
        advertise_address: lease.map(|l| l.address.to_string()),
        bind_port: super::API_SERVER_PORT,
    };
    let mut kubelet_args = BTreeMap::from([("cloud-provider".to_owned(), "external".to_owned())]);
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
        kubelet_extra_args: kubelet_args,
        taints,
        ignore_preflight_errors: ignore,
    };
    let yaml = |value: &dyn erased::Yaml| value.to_yaml();
    if input.role == NodeRole::Init {
        let init = InitConfiguration {
            api_version: API_VERSION.into(),
            kind: "InitConfiguration".into(),
            bootstrap_tokens: vec![BootstrapTokenConfig {
                token: input.token.to_string(),
                description: "vkube: joins nodes of this cluster".into(),
                ttl: "0s".into(),
                groups: vec!["system:bootstrappers:kubeadm:default-node-token".into()],
                usages: vec!["signing".into(), "authentication".into()],
            }],
            local_api_endpoint: advertise,
            node_registration: registration,
        };
        let cluster = ClusterConfiguration {
            api_version: API_VERSION.into(),
            kind: "ClusterConfiguration".into(),
            cluster_name: spec.name().to_string(),
            kubernetes_version: spec.kubernetes_version().to_string(),
            control_plane_endpoint: input.endpoint(),
            networking: Networking {
                pod_subnet: spec.pod_cidr().to_string(),
                service_subnet: spec.service_cidr().to_string(),
                dns_domain: "cluster.local".into(),
            },
            api_server: ControlPlaneComponent {
                extra_args: BTreeMap::new(),
                cert_sans: vec![input.vip.to_string()],
            },
            controller_manager: ControlPlaneComponent {
                extra_args: BTreeMap::from([("cloud-provider".to_owned(), "external".to_owned())]),
                cert_sans: Vec::new(),
            },
        };
        Ok(format!("{}---\n{}", yaml(&init), yaml(&cluster)))
    } else {
        let join = JoinConfiguration {
            api_version: API_VERSION.into(),
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
