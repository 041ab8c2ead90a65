//! The YAML form of a cluster document, [`RawClusterSpec`], before
//! validation. Only syntax lives here: serde refuses unknown fields with
//! their path; every other check is in `validate.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A cluster document as written in YAML, before validation:
///
/// ```yaml
/// apiVersion: vkube.dev/v1alpha1
/// kind: Cluster
/// metadata: { name: prod-a }
/// spec:
///   kubernetesVersion: v1.30.2
///   datacenter: DC0
///   folder: /DC0/vm              # vkube creates /DC0/vm/prod-a
///   template: /DC0/vm/ubuntu-2204-kube-v1.30.2
///   cloneMode: full              # or linked (needs a snapshot)
///   osFamily: ubuntu             # ubuntu | rocky | flatcar
///   ipAllocation: static         # static | dhcp
///   placementDomains:
///     - { name: az1, computeCluster: /DC0/host/C0, datastore: /DC0/datastore/ds1,
///         network: /DC0/network/VM Network, ipPool: nodes }
///   controlPlane: { replicas: 3, vip: { address: 10.20.0.5 }, cpu: 2,
///                   memoryMiB: 4096, placementDomain: az1 }
///   nodePools:
///     - { name: workers, replicas: 2, cpu: 4, memoryMiB: 8192, placementDomains: [az1] }
///   cloudCredentials: prod-a-cloud  # vkube cluster credentials set prod-a-cloud …
///   network: { cni: cilium }        # cilium | calico | none
///   registry:                       # optional: pull every image through a mirror
///     mirror: harbor.example.com/k8s
///   storage:                        # optional: the default StorageClass
///     defaultDatastore: /DC0/datastore/ds1   # or storagePolicy: gold
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawClusterSpec {
    /// Must be `vkube.dev/v1alpha1`.
    #[serde(default)]
    pub api_version: String,
    /// Must be `Cluster`.
    #[serde(default)]
    pub kind: String,
    /// The cluster's name.
    #[serde(default)]
    pub metadata: RawMetadata,
    /// Everything else.
    #[serde(default)]
    pub spec: RawSpec,
}

/// `metadata` of a cluster document.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawMetadata {
    /// The cluster's name: a DNS label of at most 40 characters.
    #[serde(default)]
    pub name: String,
}

/// `spec` of a cluster document.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSpec {
    /// Kubernetes release, e.g. `v1.30.2`.
    #[serde(default)]
    pub kubernetes_version: String,
    /// vSphere datacenter name or path.
    #[serde(default)]
    pub datacenter: String,
    /// Parent VM folder; vkube creates `<folder>/<cluster>` inside it.
    #[serde(default)]
    pub folder: String,
    /// The VM or template to clone, by inventory path or name.
    #[serde(default)]
    pub template: String,
    /// `full` (default) or `linked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_mode: Option<String>,
    /// `ubuntu` (default), `rocky` or `flatcar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_family: Option<String>,
    /// `dhcp` (default) or `static`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_allocation: Option<String>,
    /// Fault domains nodes are placed in.
    #[serde(default)]
    pub placement_domains: Vec<RawPlacementDomain>,
    /// The control plane.
    #[serde(default)]
    pub control_plane: RawControlPlane,
    /// Worker node pools.
    #[serde(default)]
    pub node_pools: Vec<RawNodePool>,
    /// Pod and service networks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<RawClusterNetwork>,
    /// SSH public keys authorized on every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh_authorized_keys: Vec<String>,
    /// NTP servers (names or addresses) for chrony / timesyncd.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ntp_servers: Vec<String>,
    /// Proxy settings propagated to nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<RawProxy>,
    /// Turn off VMXNET3 UDP tunnel offload at every boot (fixes CNI
    /// connectivity on hardware version 14+).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_tunnel_offload: bool,
    /// Registry mirror every image is pulled through (air-gapped installs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RawRegistry>,
    /// Name of the stored vCenter credentials the cloud provider (CPI) and
    /// the CSI driver run as.
    #[serde(default)]
    pub cloud_credentials: String,
    /// Where the default StorageClass provisions volumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<RawStorage>,
}

/// `spec.registry`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRegistry {
    /// `host[:port][/path]` without a scheme (HTTPS is implied), e.g.
    /// `harbor.example.com/k8s`.
    #[serde(default)]
    pub mirror: String,
    /// PEM CA certificates the mirror's TLS certificate chains to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<String>,
    /// Skip TLS verification of the mirror (labs only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

/// `spec.storage`: exactly one of the two fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawStorage {
    /// Datastore path for the default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_datastore: Option<String>,
    /// Storage policy (SPBM) name for the default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_policy: Option<String>,
}

/// One entry of `spec.placementDomains`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPlacementDomain {
    /// Domain name, referenced by the control plane and node pools.
    #[serde(default)]
    pub name: String,
    /// Compute cluster path.
    #[serde(default)]
    pub compute_cluster: String,
    /// Resource pool path; defaults to `<computeCluster>/Resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_pool: Option<String>,
    /// Datastore path; exclusive with `datastoreCluster`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore: Option<String>,
    /// Datastore cluster (storage pod) path; exclusive with `datastore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datastore_cluster: Option<String>,
    /// Network (port group) path.
    #[serde(default)]
    pub network: String,
    /// IP pool nodes of this domain take addresses from (static allocation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_pool: Option<String>,
}

/// `spec.controlPlane`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawControlPlane {
    /// 1, 3 or 5.
    #[serde(default)]
    pub replicas: u32,
    /// The API server's virtual IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<RawVip>,
    /// vCPUs per node.
    #[serde(default)]
    pub cpu: u32,
    /// Memory per node in MiB.
    #[serde(default, rename = "memoryMiB")]
    pub memory_mib: u32,
    /// Disk size in GiB; unset keeps the template's size.
    #[serde(default, rename = "diskGiB", skip_serializing_if = "Option::is_none")]
    pub disk_gib: Option<u32>,
    /// The one placement domain of the control plane.
    #[serde(default)]
    pub placement_domain: String,
    /// kube-vip image for the VIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kube_vip_image: Option<String>,
    /// Replace control-plane nodes that stay unhealthy (one at a time, never
    /// below etcd quorum); absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<RawHealthCheck>,
}

/// `spec.controlPlane.vip`: exactly one of the two fields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawVip {
    /// A fixed address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Take an address from this IP pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_pool: Option<String>,
}

/// One entry of `spec.nodePools`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawNodePool {
    /// Pool name (not `cp`).
    #[serde(default)]
    pub name: String,
    /// Number of nodes; 0 is allowed.
    #[serde(default)]
    pub replicas: u32,
    /// vCPUs per node.
    #[serde(default)]
    pub cpu: u32,
    /// Memory per node in MiB.
    #[serde(default, rename = "memoryMiB")]
    pub memory_mib: u32,
    /// Disk size in GiB; unset keeps the template's size.
    #[serde(default, rename = "diskGiB", skip_serializing_if = "Option::is_none")]
    pub disk_gib: Option<u32>,
    /// Domains the nodes are spread over, round-robin by node index.
    #[serde(default)]
    pub placement_domains: Vec<String>,
    /// Kubernetes node labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Kubernetes node taints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<RawTaint>,
    /// Replace nodes that stay unhealthy; absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<RawHealthCheck>,
}

/// `healthCheck` of the control plane or a node pool, as Cluster API's
/// MachineHealthCheck reads:
///
/// ```yaml
/// healthCheck:
///   unhealthyConditions:          # default: Ready False 5m, Ready Unknown 5m
///     - { type: Ready, status: "False", timeout: 5m }
///     - { type: Ready, status: Unknown, timeout: 5m }
///   nodeStartupTimeout: 10m       # default; 0 turns the check off
///   maxUnhealthy: 40%             # or a count; default 100%
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawHealthCheck {
    /// A node is unhealthy once one of these holds for longer than its
    /// timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_conditions: Option<Vec<RawUnhealthyCondition>>,
    /// A node whose Node object has not appeared this long after power-on
    /// is unhealthy (`10m` by default, `0` for never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_startup_timeout: Option<String>,
    /// Remediate only while at most this many of the group's nodes are
    /// unhealthy: a count or a percentage (`40%`), default `100%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unhealthy: Option<RawIntOrPercent>,
}

/// One entry of `healthCheck.unhealthyConditions`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawUnhealthyCondition {
    /// Node condition type, e.g. `Ready` or `DiskPressure`.
    #[serde(default, rename = "type")]
    pub kind: String,
    /// `True`, `False` or `Unknown`.
    #[serde(default)]
    pub status: String,
    /// How long the condition must hold, e.g. `5m`.
    #[serde(default)]
    pub timeout: String,
}

/// A count (`2`) or a percentage (`"40%"`), as Kubernetes' IntOrString.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RawIntOrPercent {
    /// A whole number.
    Count(i64),
    /// `40%` (or a number written as text).
    Text(String),
}

impl<'de> Deserialize<'de> for RawIntOrPercent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawIntOrPercent;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a count like `2` or a percentage like `40%`")
            }
            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Self::Value, E> {
                Ok(RawIntOrPercent::Count(value))
            }
            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Self::Value, E> {
                i64::try_from(value)
                    .map(RawIntOrPercent::Count)
                    .map_err(|_| E::custom(format!("{value} is not a count of nodes")))
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(RawIntOrPercent::Text(value.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// A taint of a node pool.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTaint {
    /// Taint key (label key syntax).
    #[serde(default)]
    pub key: String,
    /// Optional value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    #[serde(default)]
    pub effect: String,
}

/// `spec.network`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawClusterNetwork {
    /// Pod network CIDR; default `10.244.0.0/16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<String>,
    /// Service network CIDR; default `10.96.0.0/12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_cidr: Option<String>,
    /// Pod network plugin: `cilium` (default), `calico` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cni: Option<String>,
}

/// `spec.proxy`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawProxy {
    /// `http://[user:password@]host:port` for plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_proxy: Option<String>,
    /// Proxy URL for HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_proxy: Option<String>,
    /// Hosts, domains and CIDRs reached directly. vkube adds the pod and
    /// service networks, the VIP, localhost and cluster-local domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_proxy: Vec<String>,
}
