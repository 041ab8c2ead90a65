//! The cluster spec: the YAML form [`RawClusterSpec`] (`apiVersion:
//! vkube.dev/v1alpha1`, `kind: Cluster`) and the validated [`ClusterSpec`],
//! which can only hold a spec vkube can build.
//!
//! Owns syntax and cross-field checks, the canonical YAML form and the
//! per-node-group [`NodeGroup::spec_hash`]. Leaves out anything that needs
//! vCenter or the store: resolving inventory paths is `vkube-vsphere`'s job
//! (one pass, one report), and checking that IP pools exist and fit is done
//! with the pools in hand by [`ClusterSpec::check_pools`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{Error, Problems};
use super::values::{check_label, ClusterName, DomainName, KubernetesVersion, NodePoolName};
use crate::ipam::{parse_address, Cidr, IpPool, PoolName};

/// The only `apiVersion` this version of vkube reads.
pub const API_VERSION: &str = "vkube.dev/v1alpha1";
/// The `kind` of a cluster document.
pub const KIND: &str = "Cluster";
/// Node group name of the control plane; node pools may not use it.
pub const CONTROL_PLANE_GROUP: &str = "cp";
/// kube-vip image used unless `spec.controlPlane.kubeVipImage` says otherwise.
pub const DEFAULT_KUBE_VIP_IMAGE: &str = "ghcr.io/kube-vip/kube-vip:v0.8.0";
/// Pod network used unless `spec.network.podCidr` says otherwise.
pub const DEFAULT_POD_CIDR: &str = "192.168.0.0/16";
/// Service network used unless `spec.network.serviceCidr` says otherwise.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
/// Digits reserved for a node's index in VM names (`<cluster>-<pool>-9999`).
pub const INDEX_DIGITS: usize = 4;

// kubeadm's preflight checks refuse control-plane nodes with fewer than 2
// CPUs or less than 1700 MB of memory; round up to what VMs are sized in.
const MIN_CONTROL_PLANE_CPU: u32 = 2;
const MIN_CONTROL_PLANE_MEMORY_MIB: u32 = 2048;
const MIN_WORKER_MEMORY_MIB: u32 = 1024;
const MIN_DISK_GIB: u32 = 10;

// ---------------------------------------------------------------------------
// Raw (YAML) form
// ---------------------------------------------------------------------------

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
    /// Pod network CIDR; default `192.168.0.0/16`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<String>,
    /// Service network CIDR; default `10.96.0.0/12`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_cidr: Option<String>,
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

// ---------------------------------------------------------------------------
// Validated form
// ---------------------------------------------------------------------------

/// How node VMs are cloned from the template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CloneMode {
    /// A full copy of the template's disks.
    Full,
    /// A delta disk on the template's current snapshot. `vkube-vsphere`
    /// falls back to a full clone, with a warning, when there is no snapshot.
    Linked,
}

/// The node operating system, which decides the bootstrap format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OsFamily {
    /// Ubuntu with cloud-init.
    Ubuntu,
    /// Rocky Linux with cloud-init.
    Rocky,
    /// Flatcar Container Linux with Ignition.
    Flatcar,
}

impl OsFamily {
    /// Whether nodes boot with cloud-init (else Ignition).
    pub fn uses_cloud_init(self) -> bool {
        !matches!(self, OsFamily::Flatcar)
    }

    fn as_str(self) -> &'static str {
        match self {
            OsFamily::Ubuntu => "ubuntu",
            OsFamily::Rocky => "rocky",
            OsFamily::Flatcar => "flatcar",
        }
    }
}

/// How nodes get their address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IpAllocation {
    /// DHCP on the domain's network.
    Dhcp,
    /// A lease from the domain's IP pool.
    Static,
}

/// Where a domain's VMs are stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Storage {
    /// One datastore, by path.
    Datastore(String),
    /// A datastore cluster; Storage DRS picks the datastore.
    DatastoreCluster(String),
}

/// A validated placement (fault) domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementDomain {
    pub(crate) name: DomainName,
    pub(crate) compute_cluster: String,
    pub(crate) resource_pool: String,
    pub(crate) storage: Storage,
    pub(crate) network: String,
    pub(crate) ip_pool: Option<PoolName>,
}

impl PlacementDomain {
    /// The domain's name.
    pub fn name(&self) -> &DomainName {
        &self.name
    }
    /// Compute cluster path.
    pub fn compute_cluster(&self) -> &str {
        &self.compute_cluster
    }
    /// Resource pool path (defaulted to `<computeCluster>/Resources`).
    pub fn resource_pool(&self) -> &str {
        &self.resource_pool
    }
    /// Datastore or datastore cluster.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }
    /// Network path.
    pub fn network(&self) -> &str {
        &self.network
    }
    /// IP pool of the domain, if any (always set when allocation is static).
    pub fn ip_pool(&self) -> Option<&PoolName> {
        self.ip_pool.as_ref()
    }
}

/// The API server's virtual IP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Vip {
    /// A fixed address.
    Address(IpAddr),
    /// An address leased from this pool (see `naming::vip_lease_node`).
    FromPool(PoolName),
}

/// The validated control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlPlane {
    pub(crate) replicas: u32,
    pub(crate) vip: Vip,
    pub(crate) cpu: u32,
    pub(crate) memory_mib: u32,
    pub(crate) disk_gib: Option<u32>,
    pub(crate) placement_domain: DomainName,
    pub(crate) kube_vip_image: String,
}

impl ControlPlane {
    /// 1, 3 or 5.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }
    /// The API server's virtual IP.
    pub fn vip(&self) -> &Vip {
        &self.vip
    }
    /// vCPUs per node.
    pub fn cpu(&self) -> u32 {
        self.cpu
    }
    /// Memory per node in MiB.
    pub fn memory_mib(&self) -> u32 {
        self.memory_mib
    }
    /// Disk size in GiB, or `None` to keep the template's.
    pub fn disk_gib(&self) -> Option<u32> {
        self.disk_gib
    }
    /// The control plane's placement domain.
    pub fn placement_domain(&self) -> &DomainName {
        &self.placement_domain
    }
    /// kube-vip image.
    pub fn kube_vip_image(&self) -> &str {
        &self.kube_vip_image
    }
}

/// Effect of a taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaintEffect {
    /// Pods without a toleration are not scheduled.
    NoSchedule,
    /// The scheduler avoids the node.
    PreferNoSchedule,
    /// Running pods without a toleration are evicted.
    NoExecute,
}

/// A validated node taint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Taint {
    /// Key.
    pub key: String,
    /// Value, possibly absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Effect.
    pub effect: TaintEffect,
}

/// A validated worker node pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePool {
    pub(crate) name: NodePoolName,
    pub(crate) replicas: u32,
    pub(crate) cpu: u32,
    pub(crate) memory_mib: u32,
    pub(crate) disk_gib: Option<u32>,
    pub(crate) placement_domains: Vec<DomainName>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) taints: Vec<Taint>,
}

impl NodePool {
    /// The pool's name.
    pub fn name(&self) -> &NodePoolName {
        &self.name
    }
    /// Number of nodes.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }
    /// vCPUs per node.
    pub fn cpu(&self) -> u32 {
        self.cpu
    }
    /// Memory per node in MiB.
    pub fn memory_mib(&self) -> u32 {
        self.memory_mib
    }
    /// Disk size in GiB, or `None` to keep the template's.
    pub fn disk_gib(&self) -> Option<u32> {
        self.disk_gib
    }
    /// Domains, in the order nodes are spread over them.
    pub fn placement_domains(&self) -> &[DomainName] {
        &self.placement_domains
    }
    /// Node labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.labels
    }
    /// Node taints.
    pub fn taints(&self) -> &[Taint] {
        &self.taints
    }
}

/// Validated proxy settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Proxy {
    pub(crate) http_proxy: Option<String>,
    pub(crate) https_proxy: Option<String>,
    pub(crate) no_proxy: Vec<String>,
}

impl Proxy {
    /// Proxy for HTTP.
    pub fn http_proxy(&self) -> Option<&str> {
        self.http_proxy.as_deref()
    }
    /// Proxy for HTTPS.
    pub fn https_proxy(&self) -> Option<&str> {
        self.https_proxy.as_deref()
    }
    /// Entries the user listed to bypass the proxy.
    pub fn no_proxy(&self) -> &[String] {
        &self.no_proxy
    }
}

/// A validated cluster spec. Build one with [`RawClusterSpec::validate`] or
/// [`ClusterSpec::from_yaml`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub(crate) name: ClusterName,
    pub(crate) kubernetes_version: KubernetesVersion,
    pub(crate) datacenter: String,
    pub(crate) folder: String,
    pub(crate) template: String,
    pub(crate) clone_mode: CloneMode,
    pub(crate) os_family: OsFamily,
    pub(crate) ip_allocation: IpAllocation,
    pub(crate) placement_domains: Vec<PlacementDomain>,
    pub(crate) control_plane: ControlPlane,
    pub(crate) node_pools: Vec<NodePool>,
    pub(crate) pod_cidr: Cidr,
    pub(crate) service_cidr: Cidr,
    pub(crate) ssh_authorized_keys: Vec<String>,
    pub(crate) ntp_servers: Vec<String>,
    pub(crate) proxy: Option<Proxy>,
    pub(crate) disable_tunnel_offload: bool,
}

/// Whether a node group is the control plane or a worker pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum GroupRole {
    /// Control-plane nodes (kubeadm init/join --control-plane).
    ControlPlane,
    /// Worker nodes.
    Worker,
}

/// The control plane or one node pool, seen the same way by the planner.
#[derive(Debug, Clone, Copy)]
pub struct NodeGroup<'a> {
    spec: &'a ClusterSpec,
    name: &'a str,
    role: GroupRole,
    replicas: u32,
    cpu: u32,
    memory_mib: u32,
    disk_gib: Option<u32>,
    domains: &'a [DomainName],
}

impl<'a> NodeGroup<'a> {
    /// `cp` for the control plane, else the pool's name; this is the value
    /// of the `vkube.pool` marker.
    pub fn name(&self) -> &'a str {
        self.name
    }
    /// Control plane or worker.
    pub fn role(&self) -> GroupRole {
        self.role
    }
    /// Desired number of nodes.
    pub fn replicas(&self) -> u32 {
        self.replicas
    }
    /// vCPUs per node.
    pub fn cpu(&self) -> u32 {
        self.cpu
    }
    /// Memory per node in MiB.
    pub fn memory_mib(&self) -> u32 {
        self.memory_mib
    }
    /// Disk size in GiB, or `None` to keep the template's.
    pub fn disk_gib(&self) -> Option<u32> {
        self.disk_gib
    }
    /// Domains in round-robin order.
    pub fn domains(&self) -> &'a [DomainName] {
        self.domains
    }
    /// The domain of the node with `index`: `domains[index % len]`.
    pub fn domain_for(&self, index: u32) -> &'a DomainName {
        &self.domains[index as usize % self.domains.len()]
    }
    /// The worker pool, `None` for the control plane.
    pub fn node_pool(&self) -> Option<&'a NodePool> {
        self.spec
            .node_pools
            .iter()
            .find(|p| p.name.as_str() == self.name)
    }

    /// Hex SHA-256 of the canonical JSON of everything that needs a node to
    /// be replaced when it changes: template, Kubernetes version, OS family,
    /// CPU, memory and disk. Stable across vkube versions as long as these
    /// fields keep their names; stored on each VM as `vkube.spec-hash`.
    pub fn spec_hash(&self) -> String {
        // serde_json writes struct fields in declaration order: canonical.
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Hashed<'b> {
            template: &'b str,
            kubernetes_version: String,
            os_family: &'b str,
            cpu: u32,
            memory_mib: u32,
            disk_gib: Option<u32>,
        }
        let hashed = Hashed {
            template: &self.spec.template,
            kubernetes_version: self.spec.kubernetes_version.to_string(),
            os_family: self.spec.os_family.as_str(),
            cpu: self.cpu,
            memory_mib: self.memory_mib,
            disk_gib: self.disk_gib,
        };
        let json = serde_json::to_vec(&hashed).expect("plain struct serializes");
        hex(&Sha256::digest(json))
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ClusterSpec {
    /// Parses and validates a cluster document.
    pub fn from_yaml(text: &str) -> Result<ClusterSpec, Error> {
        RawClusterSpec::from_yaml(text)?.validate()
    }

    /// The cluster's name.
    pub fn name(&self) -> &ClusterName {
        &self.name
    }
    /// Kubernetes release.
    pub fn kubernetes_version(&self) -> &KubernetesVersion {
        &self.kubernetes_version
    }
    /// Datacenter name or path.
    pub fn datacenter(&self) -> &str {
        &self.datacenter
    }
    /// Parent VM folder (without a trailing `/`).
    pub fn folder(&self) -> &str {
        &self.folder
    }
    /// Template path or name.
    pub fn template(&self) -> &str {
        &self.template
    }
    /// Clone mode.
    pub fn clone_mode(&self) -> CloneMode {
        self.clone_mode
    }
    /// OS family.
    pub fn os_family(&self) -> OsFamily {
        self.os_family
    }
    /// Address allocation.
    pub fn ip_allocation(&self) -> IpAllocation {
        self.ip_allocation
    }
    /// Placement domains.
    pub fn placement_domains(&self) -> &[PlacementDomain] {
        &self.placement_domains
    }
    /// The domain called `name`.
    pub fn domain(&self, name: &DomainName) -> Option<&PlacementDomain> {
        self.placement_domains.iter().find(|d| &d.name == name)
    }
    /// The control plane.
    pub fn control_plane(&self) -> &ControlPlane {
        &self.control_plane
    }
    /// Worker pools.
    pub fn node_pools(&self) -> &[NodePool] {
        &self.node_pools
    }
    /// Pod network.
    pub fn pod_cidr(&self) -> Cidr {
        self.pod_cidr
    }
    /// Service network.
    pub fn service_cidr(&self) -> Cidr {
        self.service_cidr
    }
    /// SSH keys for every node.
    pub fn ssh_authorized_keys(&self) -> &[String] {
        &self.ssh_authorized_keys
    }
    /// NTP servers.
    pub fn ntp_servers(&self) -> &[String] {
        &self.ntp_servers
    }
    /// Proxy settings, if any.
    pub fn proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }
    /// Whether to apply the VMXNET3 tunnel-offload fix.
    pub fn disable_tunnel_offload(&self) -> bool {
        self.disable_tunnel_offload
    }

    /// The control plane first, then the node pools in spec order.
    pub fn groups(&self) -> Vec<NodeGroup<'_>> {
        let control_plane = &self.control_plane;
        let mut groups = vec![NodeGroup {
            spec: self,
            name: CONTROL_PLANE_GROUP,
            role: GroupRole::ControlPlane,
            replicas: control_plane.replicas,
            cpu: control_plane.cpu,
            memory_mib: control_plane.memory_mib,
            disk_gib: control_plane.disk_gib,
            domains: std::slice::from_ref(&control_plane.placement_domain),
        }];
        groups.extend(self.node_pools.iter().map(|pool| NodeGroup {
            spec: self,
            name: pool.name.as_str(),
            role: GroupRole::Worker,
            replicas: pool.replicas,
            cpu: pool.cpu,
            memory_mib: pool.memory_mib,
            disk_gib: pool.disk_gib,
            domains: &pool.placement_domains,
        }));
        groups
    }

    /// The group called `name` (`cp` for the control plane).
    pub fn group(&self, name: &str) -> Option<NodeGroup<'_>> {
        self.groups().into_iter().find(|g| g.name == name)
    }

    /// Checks the spec against the IP pools it names, with all problems
    /// together: every `ipPool` and `vip.fromPool` must exist, and a fixed
    /// VIP must sit in the control plane domain's pool network (kube-vip
    /// announces it by ARP on that segment). Pure; the caller loads pools.
    pub fn check_pools(&self, pools: &[IpPool]) -> Result<(), Error> {
        let mut problems = Problems::default();
        let find = |name: &PoolName| pools.iter().find(|p| p.name() == name);
        for (index, domain) in self.placement_domains.iter().enumerate() {
            if let Some(pool) = &domain.ip_pool {
                if find(pool).is_none() {
                    problems.push(
                        format!("spec.placementDomains[{index}].ipPool"),
                        format!("unknown IP pool `{pool}`"),
                    );
                }
            }
        }
        let cp_pool = self
            .domain(&self.control_plane.placement_domain)
            .and_then(|d| d.ip_pool.as_ref())
            .and_then(find);
        match &self.control_plane.vip {
            Vip::FromPool(name) => {
                if find(name).is_none() {
                    problems.push(
                        "spec.controlPlane.vip.fromPool",
                        format!("unknown IP pool `{name}`"),
                    );
                }
            }
            Vip::Address(address) => {
                if let Some(pool) = cp_pool {
                    if !pool.network().contains(*address) {
                        problems.push(
                            "spec.controlPlane.vip.address",
                            format!(
                                "{address} is outside network {} of IP pool `{}` used by the control plane",
                                pool.network(),
                                pool.name()
                            ),
                        );
                    } else if pool.is_allocatable(*address) {
                        problems.push(
                            "spec.controlPlane.vip.address",
                            format!(
                                "{address} could be leased to a node by IP pool `{}`: add it to the pool's `exclude`",
                                pool.name()
                            ),
                        );
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid {
                problems: problems.list,
            })
        }
    }

    /// The YAML form with every default written out.
    pub fn to_raw(&self) -> RawClusterSpec {
        let control_plane = &self.control_plane;
        RawClusterSpec {
            api_version: API_VERSION.into(),
            kind: KIND.into(),
            metadata: RawMetadata {
                name: self.name.to_string(),
            },
            spec: RawSpec {
                kubernetes_version: self.kubernetes_version.to_string(),
                datacenter: self.datacenter.clone(),
                folder: self.folder.clone(),
                template: self.template.clone(),
                clone_mode: Some(
                    match self.clone_mode {
                        CloneMode::Full => "full",
                        CloneMode::Linked => "linked",
                    }
                    .into(),
                ),
                os_family: Some(self.os_family.as_str().into()),
                ip_allocation: Some(
                    match self.ip_allocation {
                        IpAllocation::Dhcp => "dhcp",
                        IpAllocation::Static => "static",
                    }
                    .into(),
                ),
                placement_domains: self
                    .placement_domains
                    .iter()
                    .map(|d| RawPlacementDomain {
                        name: d.name.to_string(),
                        compute_cluster: d.compute_cluster.clone(),
                        resource_pool: Some(d.resource_pool.clone()),
                        datastore: match &d.storage {
                            Storage::Datastore(path) => Some(path.clone()),
                            Storage::DatastoreCluster(_) => None,
                        },
                        datastore_cluster: match &d.storage {
                            Storage::DatastoreCluster(path) => Some(path.clone()),
                            Storage::Datastore(_) => None,
                        },
                        network: d.network.clone(),
                        ip_pool: d.ip_pool.as_ref().map(ToString::to_string),
                    })
                    .collect(),
                control_plane: RawControlPlane {
                    replicas: control_plane.replicas,
                    vip: Some(match &control_plane.vip {
                        Vip::Address(address) => RawVip {
                            address: Some(address.to_string()),
                            from_pool: None,
                        },
                        Vip::FromPool(pool) => RawVip {
                            address: None,
                            from_pool: Some(pool.to_string()),
                        },
                    }),
                    cpu: control_plane.cpu,
                    memory_mib: control_plane.memory_mib,
                    disk_gib: control_plane.disk_gib,
                    placement_domain: control_plane.placement_domain.to_string(),
                    kube_vip_image: Some(control_plane.kube_vip_image.clone()),
                },
                node_pools: self
                    .node_pools
                    .iter()
                    .map(|p| RawNodePool {
                        name: p.name.to_string(),
                        replicas: p.replicas,
                        cpu: p.cpu,
                        memory_mib: p.memory_mib,
                        disk_gib: p.disk_gib,
                        placement_domains: p
                            .placement_domains
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                        labels: p.labels.clone(),
                        taints: p
                            .taints
                            .iter()
                            .map(|t| RawTaint {
                                key: t.key.clone(),
                                value: t.value.clone(),
                                effect: format!("{:?}", t.effect),
                            })
                            .collect(),
                    })
                    .collect(),
                network: Some(RawClusterNetwork {
                    pod_cidr: Some(self.pod_cidr.to_string()),
                    service_cidr: Some(self.service_cidr.to_string()),
                }),
                ssh_authorized_keys: self.ssh_authorized_keys.clone(),
                ntp_servers: self.ntp_servers.clone(),
                proxy: self.proxy.as_ref().map(|p| RawProxy {
                    http_proxy: p.http_proxy.clone(),
                    https_proxy: p.https_proxy.clone(),
                    no_proxy: p.no_proxy.clone(),
                }),
                disable_tunnel_offload: self.disable_tunnel_offload,
            },
        }
    }

    /// Canonical YAML: every default written out, fields in a fixed order.
    /// Parsing it back gives an equal spec.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(&self.to_raw()).expect("plain structs serialize")
    }
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

impl RawClusterSpec {
    /// Parses a cluster document; only syntax is checked (unknown fields
    /// are refused with their path). Call [`validate`](Self::validate) next.
    pub fn from_yaml(text: &str) -> Result<RawClusterSpec, Error> {
        serde_yaml::from_str(text).map_err(|source| Error::Yaml { source })
    }

    /// Checks everything that can be checked without vCenter or the store
    /// and returns every problem at once, each naming its field
    /// (`spec.nodePools[1].placementDomains[0]: unknown domain "az3"`).
    pub fn validate(&self) -> Result<ClusterSpec, Error> {
        let mut problems = Problems::default();
        let p = &mut problems;
        if self.api_version != API_VERSION {
            p.push(
                "apiVersion",
                format!("must be `{API_VERSION}`, not `{}`", self.api_version),
            );
        }
        if self.kind != KIND {
            p.push("kind", format!("must be `{KIND}`, not `{}`", self.kind));
        }
        let name = ClusterName::new(&self.metadata.name)
            .map_err(|e| p.push("metadata.name", e))
            .ok();
        let spec = &self.spec;
        let kubernetes_version = spec
            .kubernetes_version
            .parse::<KubernetesVersion>()
            .map_err(|e| p.push("spec.kubernetesVersion", e))
            .ok();
        let datacenter = required_path(p, "spec.datacenter", &spec.datacenter);
        let folder = required_path(p, "spec.folder", &spec.folder);
        let template = required_path(p, "spec.template", &spec.template);
        let clone_mode = choice(
            p,
            "spec.cloneMode",
            spec.clone_mode.as_deref(),
            &[("full", CloneMode::Full), ("linked", CloneMode::Linked)],
        );
        let os_family = choice(
            p,
            "spec.osFamily",
            spec.os_family.as_deref(),
            &[
                ("ubuntu", OsFamily::Ubuntu),
                ("rocky", OsFamily::Rocky),
                ("flatcar", OsFamily::Flatcar),
            ],
        );
        let ip_allocation = choice(
            p,
            "spec.ipAllocation",
            spec.ip_allocation.as_deref(),
            &[
                ("dhcp", IpAllocation::Dhcp),
                ("static", IpAllocation::Static),
            ],
        );

        let domains = validate_domains(p, &spec.placement_domains);
        // References are checked against every well-formed domain name, so
        // one bad field in a domain does not make each reference fail too.
        let domain_names: BTreeSet<&str> = spec
            .placement_domains
            .iter()
            .map(|d| d.name.trim())
            .filter(|name| DomainName::new(name).is_ok())
            .collect();
        let known = |name: &str| domain_names.contains(name);

        let control_plane = validate_control_plane(p, &spec.control_plane, &known);
        let node_pools = validate_node_pools(p, &spec.node_pools, &known);

        // VM names `<cluster>-<pool>-<index>` must stay one DNS label (the
        // control plane's `cp` always fits next to a 40-character name).
        if let Some(name) = &name {
            for (index, pool) in spec.node_pools.iter().enumerate() {
                let pool = pool.name.trim();
                let total = name.as_str().len() + 1 + pool.len() + 1 + INDEX_DIGITS;
                if total > 63 {
                    p.push(
                        format!("spec.nodePools[{index}].name"),
                        format!("VM names `{name}-{pool}-NNNN` would be {total} characters, over the 63 a hostname allows: shorten the cluster or pool name"),
                    );
                }
            }
        }

        // Linked clones share the template's disk: its size is fixed.
        if clone_mode == Some(CloneMode::Linked) {
            if spec.control_plane.disk_gib.is_some() {
                p.push("spec.controlPlane.diskGiB", "must be unset with `cloneMode: linked`: a linked clone keeps the template's disk size (use `cloneMode: full` to resize)");
            }
            for (index, pool) in spec.node_pools.iter().enumerate() {
                if pool.disk_gib.is_some() {
                    p.push(format!("spec.nodePools[{index}].diskGiB"), "must be unset with `cloneMode: linked`: a linked clone keeps the template's disk size (use `cloneMode: full` to resize)");
                }
            }
        }

        // Static addresses need a pool on every domain a node lands in.
        if ip_allocation == Some(IpAllocation::Static) {
            let mut used: BTreeSet<&str> = BTreeSet::new();
            used.insert(spec.control_plane.placement_domain.as_str());
            for pool in &spec.node_pools {
                if pool.replicas > 0 {
                    used.extend(pool.placement_domains.iter().map(String::as_str));
                }
            }
            for (index, domain) in spec.placement_domains.iter().enumerate() {
                if used.contains(domain.name.as_str()) && domain.ip_pool.is_none() {
                    p.push(
                        format!("spec.placementDomains[{index}].ipPool"),
                        format!("is required with `ipAllocation: static`: nodes in domain `{}` need addresses", domain.name),
                    );
                }
            }
        }

        let (pod_cidr, service_cidr) = validate_network(p, spec.network.as_ref());
        if let (Some(pod), Some(service)) = (pod_cidr, service_cidr) {
            if pod.range().intersection(&service.range()).is_some() {
                p.push(
                    "spec.network.serviceCidr",
                    format!("{service} overlaps the pod network {pod}"),
                );
            }
            if let Some(ControlPlane {
                vip: Vip::Address(vip),
                ..
            }) = &control_plane
            {
                for (field, cidr) in [("podCidr", pod), ("serviceCidr", service)] {
                    if cidr.contains(*vip) {
                        p.push(
                            "spec.controlPlane.vip.address",
                            format!("{vip} is inside spec.network.{field} {cidr}"),
                        );
                    }
                }
            }
        }

        for (index, key) in spec.ssh_authorized_keys.iter().enumerate() {
            if let Err(e) = check_ssh_key(key) {
                p.push(format!("spec.sshAuthorizedKeys[{index}]"), e);
            }
        }
        for (index, server) in spec.ntp_servers.iter().enumerate() {
            if let Err(e) = check_host(server) {
                p.push(format!("spec.ntpServers[{index}]"), e);
            }
        }
        let proxy = spec.proxy.as_ref().map(|raw| validate_proxy(p, raw));

        if !problems.is_empty() {
            return Err(Error::Invalid {
                problems: problems.list,
            });
        }
        let (
            Some(name),
            Some(kubernetes_version),
            Some(datacenter),
            Some(folder),
            Some(template),
            Some(clone_mode),
            Some(os_family),
            Some(ip_allocation),
            Some(control_plane),
            Some(pod_cidr),
            Some(service_cidr),
        ) = (
            name,
            kubernetes_version,
            datacenter,
            folder,
            template,
            clone_mode,
            os_family,
            ip_allocation,
            control_plane,
            pod_cidr,
            service_cidr,
        )
        else {
            unreachable!("a missing part always records a problem")
        };
        Ok(ClusterSpec {
            name,
            kubernetes_version,
            datacenter,
            folder,
            template,
            clone_mode,
            os_family,
            ip_allocation,
            placement_domains: domains,
            control_plane,
            node_pools,
            pod_cidr,
            service_cidr,
            ssh_authorized_keys: spec
                .ssh_authorized_keys
                .iter()
                .map(|k| k.trim().to_owned())
                .collect(),
            ntp_servers: spec
                .ntp_servers
                .iter()
                .map(|s| s.trim().to_owned())
                .collect(),
            proxy,
            disable_tunnel_offload: spec.disable_tunnel_offload,
        })
    }
}

fn required_path(p: &mut Problems, field: &str, value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        p.push(field, "is required");
        return None;
    }
    if value.contains(['\n', '\r']) {
        p.push(field, "must be a single line");
        return None;
    }
    let trimmed = value.trim_end_matches('/');
    Some(if trimmed.is_empty() { "/" } else { trimmed }.to_owned())
}

fn choice<T: Copy>(
    p: &mut Problems,
    field: &str,
    value: Option<&str>,
    options: &[(&str, T)],
) -> Option<T> {
    let value = value.map(str::trim).unwrap_or(options[0].0);
    match options.iter().find(|(name, _)| *name == value) {
        Some((_, choice)) => Some(*choice),
        None => {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("`{n}`")).collect();
            p.push(
                field,
                format!("`{value}` is not one of {}", names.join(", ")),
            );
            None
        }
    }
}

fn validate_domains(p: &mut Problems, raws: &[RawPlacementDomain]) -> Vec<PlacementDomain> {
    if raws.is_empty() {
        p.push(
            "spec.placementDomains",
            "at least one placement domain is required",
        );
    }
    let mut domains = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, raw) in raws.iter().enumerate() {
        let at = |field: &str| format!("spec.placementDomains[{index}].{field}");
        let before = p.list.len();
        let name = DomainName::new(raw.name.trim())
            .map_err(|e| p.push(at("name"), e))
            .ok();
        if let Some(other) = seen.insert(raw.name.trim(), index) {
            p.push(
                at("name"),
                format!(
                    "`{}` is already used by spec.placementDomains[{other}]",
                    raw.name.trim()
                ),
            );
        }
        let compute_cluster = required_path(p, &at("computeCluster"), &raw.compute_cluster);
        let network = required_path(p, &at("network"), &raw.network);
        let resource_pool = match &raw.resource_pool {
            Some(path) => required_path(p, &at("resourcePool"), path),
            None => compute_cluster.as_ref().map(|c| format!("{c}/Resources")),
        };
        let storage = match (&raw.datastore, &raw.datastore_cluster) {
            (Some(_), Some(_)) => {
                p.push(
                    at("datastoreCluster"),
                    "set either `datastore` or `datastoreCluster`, not both",
                );
                None
            }
            (None, None) => {
                p.push(
                    at("datastore"),
                    "one of `datastore` or `datastoreCluster` is required",
                );
                None
            }
            (Some(path), None) => required_path(p, &at("datastore"), path).map(Storage::Datastore),
            (None, Some(path)) => {
                required_path(p, &at("datastoreCluster"), path).map(Storage::DatastoreCluster)
            }
        };
        let ip_pool = raw.ip_pool.as_ref().and_then(|pool| {
            PoolName::new(pool.trim())
                .map_err(|e| p.push(at("ipPool"), e))
                .ok()
        });
        if p.list.len() == before {
            if let (
                Some(name),
                Some(compute_cluster),
                Some(network),
                Some(resource_pool),
                Some(storage),
            ) = (name, compute_cluster, network, resource_pool, storage)
            {
                domains.push(PlacementDomain {
                    name,
                    compute_cluster,
                    resource_pool,
                    storage,
                    network,
                    ip_pool,
                });
            }
        }
    }
    domains
}

fn validate_control_plane(
    p: &mut Problems,
    raw: &RawControlPlane,
    known: &dyn Fn(&str) -> bool,
) -> Option<ControlPlane> {
    let before = p.list.len();
    if ![1, 3, 5].contains(&raw.replicas) {
        p.push(
            "spec.controlPlane.replicas",
            format!(
                "must be 1, 3 or 5 (etcd needs an odd quorum), not {}",
                raw.replicas
            ),
        );
    }
    let vip = match &raw.vip {
        None => {
            p.push(
                "spec.controlPlane.vip",
                "is required: `{address: IP}` or `{fromPool: POOL}`",
            );
            None
        }
        Some(RawVip {
            address: Some(_),
            from_pool: Some(_),
        }) => {
            p.push(
                "spec.controlPlane.vip",
                "set either `address` or `fromPool`, not both",
            );
            None
        }
        Some(RawVip {
            address: None,
            from_pool: None,
        }) => {
            p.push(
                "spec.controlPlane.vip",
                "one of `address` or `fromPool` is required",
            );
            None
        }
        Some(RawVip {
            address: Some(address),
            ..
        }) => parse_address(address)
            .map(Vip::Address)
            .map_err(|e| p.push("spec.controlPlane.vip.address", e))
            .ok(),
        Some(RawVip {
            from_pool: Some(pool),
            ..
        }) => PoolName::new(pool.trim())
            .map(Vip::FromPool)
            .map_err(|e| p.push("spec.controlPlane.vip.fromPool", e))
            .ok(),
    };
    check_size(
        p,
        "spec.controlPlane",
        raw.cpu,
        raw.memory_mib,
        raw.disk_gib,
        MIN_CONTROL_PLANE_CPU,
        MIN_CONTROL_PLANE_MEMORY_MIB,
    );
    let domain = raw.placement_domain.trim();
    let placement_domain = if domain.is_empty() {
        p.push(
            "spec.controlPlane.placementDomain",
            "is required (the control plane uses exactly one placement domain)",
        );
        None
    } else if !known(domain) {
        p.push(
            "spec.controlPlane.placementDomain",
            format!("unknown domain {domain:?}"),
        );
        None
    } else {
        DomainName::new(domain).ok()
    };
    let kube_vip_image = raw
        .kube_vip_image
        .as_deref()
        .map(str::trim)
        .unwrap_or(DEFAULT_KUBE_VIP_IMAGE);
    if kube_vip_image.is_empty() || kube_vip_image.contains(char::is_whitespace) {
        p.push(
            "spec.controlPlane.kubeVipImage",
            format!("`{kube_vip_image}` is not an image reference"),
        );
    }
    if p.list.len() != before {
        return None;
    }
    Some(ControlPlane {
        replicas: raw.replicas,
        vip: vip?,
        cpu: raw.cpu,
        memory_mib: raw.memory_mib,
        disk_gib: raw.disk_gib,
        placement_domain: placement_domain?,
        kube_vip_image: kube_vip_image.to_owned(),
    })
}

fn check_size(
    p: &mut Problems,
    at: &str,
    cpu: u32,
    memory_mib: u32,
    disk_gib: Option<u32>,
    min_cpu: u32,
    min_memory: u32,
) {
    if cpu < min_cpu {
        p.push(
            format!("{at}.cpu"),
            format!("must be at least {min_cpu}, not {cpu}"),
        );
    }
    if memory_mib < min_memory {
        p.push(
            format!("{at}.memoryMiB"),
            format!("must be at least {min_memory}, not {memory_mib}"),
        );
    }
    if let Some(disk) = disk_gib {
        if disk < MIN_DISK_GIB {
            p.push(
                format!("{at}.diskGiB"),
                format!("must be at least {MIN_DISK_GIB}, not {disk}"),
            );
        }
    }
}

fn validate_node_pools(
    p: &mut Problems,
    raws: &[RawNodePool],
    known: &dyn Fn(&str) -> bool,
) -> Vec<NodePool> {
    let mut pools = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (index, raw) in raws.iter().enumerate() {
        let at = format!("spec.nodePools[{index}]");
        let before = p.list.len();
        let name = raw.name.trim();
        let pool_name = NodePoolName::new(name)
            .map_err(|e| p.push(format!("{at}.name"), e))
            .ok();
        if name == CONTROL_PLANE_GROUP {
            p.push(
                format!("{at}.name"),
                format!("`{CONTROL_PLANE_GROUP}` is reserved for the control plane"),
            );
        }
        if let Some(other) = seen.insert(name, index) {
            p.push(
                format!("{at}.name"),
                format!("`{name}` is already used by spec.nodePools[{other}]"),
            );
        }
        check_size(
            p,
            &at,
            raw.cpu,
            raw.memory_mib,
            raw.disk_gib,
            1,
            MIN_WORKER_MEMORY_MIB,
        );
        if raw.placement_domains.is_empty() {
            p.push(
                format!("{at}.placementDomains"),
                "at least one placement domain is required",
            );
        }
        let mut domains = Vec::new();
        for (position, domain) in raw.placement_domains.iter().enumerate() {
            let domain = domain.trim();
            let field = format!("{at}.placementDomains[{position}]");
            if !known(domain) {
                p.push(field, format!("unknown domain {domain:?}"));
            } else if raw.placement_domains[..position]
                .iter()
                .any(|d| d.trim() == domain)
            {
                p.push(field, format!("domain {domain:?} is listed twice"));
            } else if let Ok(domain) = DomainName::new(domain) {
                domains.push(domain);
            }
        }
        for (key, value) in &raw.labels {
            if let Err(e) = check_label_key(key).and_then(|()| check_node_label_key(key)) {
                p.push(format!("{at}.labels[{key:?}]"), e);
            }
            if let Err(e) = check_label_value(value) {
                p.push(format!("{at}.labels[{key:?}]"), e);
            }
        }
        let mut taints = Vec::new();
        for (position, taint) in raw.taints.iter().enumerate() {
            let field = format!("{at}.taints[{position}]");
            if let Err(e) = check_label_key(&taint.key) {
                p.push(format!("{field}.key"), e);
            }
            if let Some(value) = &taint.value {
                if let Err(e) = check_label_value(value) {
                    p.push(format!("{field}.value"), e);
                }
            }
            let effect = match taint.effect.as_str() {
                "NoSchedule" => Some(TaintEffect::NoSchedule),
                "PreferNoSchedule" => Some(TaintEffect::PreferNoSchedule),
                "NoExecute" => Some(TaintEffect::NoExecute),
                other => {
                    p.push(
                        format!("{field}.effect"),
                        format!(
                            "`{other}` is not one of `NoSchedule`, `PreferNoSchedule`, `NoExecute`"
                        ),
                    );
                    None
                }
            };
            if let Some(effect) = effect {
                taints.push(Taint {
                    key: taint.key.clone(),
                    value: taint.value.clone(),
                    effect,
                });
            }
        }
        if p.list.len() == before {
            if let Some(name) = pool_name {
                pools.push(NodePool {
                    name,
                    replicas: raw.replicas,
                    cpu: raw.cpu,
                    memory_mib: raw.memory_mib,
                    disk_gib: raw.disk_gib,
                    placement_domains: domains,
                    labels: raw.labels.clone(),
                    taints,
                });
            }
        }
    }
    pools
}

/// A Kubernetes label key: `[prefix/]name`, prefix a DNS subdomain.
fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let valid = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix
                .split('.')
                .all(|label| check_label(label, 63).is_ok());
        if !valid {
            return Err(format!(
                "key `{key}` has an invalid prefix `{prefix}` (a lowercase DNS subdomain)"
            ));
        }
    }
    if name.is_empty() || check_label_value(name).is_err() {
        return Err(format!("key `{key}` must end in a name of 1 to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"));
    }
    Ok(())
}

/// Kubelets may only set a few labels under `kubernetes.io` and `k8s.io`
/// (the NodeRestriction admission plugin refuses the rest).
fn check_node_label_key(key: &str) -> Result<(), String> {
    let Some((prefix, _)) = key.rsplit_once('/') else {
        return Ok(());
    };
    let restricted = ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|domain| prefix == *domain || prefix.ends_with(&format!(".{domain}")));
    let allowed_prefix = ["kubelet.kubernetes.io", "node.kubernetes.io"]
        .iter()
        .any(|domain| prefix == *domain || prefix.ends_with(&format!(".{domain}")));
    let allowed_key = [
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ]
    .contains(&key);
    if restricted && !allowed_prefix && !allowed_key {
        return Err(format!(
            "kubelets may not set `{key}` (NodeRestriction refuses labels under `kubernetes.io` and `k8s.io`): use `node.kubernetes.io/…` or your own prefix"
        ));
    }
    Ok(())
}

fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let chars_ok = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let ends_ok = value.starts_with(|c: char| c.is_ascii_alphanumeric())
        && value.ends_with(|c: char| c.is_ascii_alphanumeric());
    if value.len() > 63 || !chars_ok || !ends_ok {
        return Err(format!("value `{value}` must be at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit"));
    }
    Ok(())
}

fn validate_network(
    p: &mut Problems,
    raw: Option<&RawClusterNetwork>,
) -> (Option<Cidr>, Option<Cidr>) {
    let raw = raw.cloned().unwrap_or_default();
    let parse = |p: &mut Problems, field: &str, value: Option<&str>, default: &str| {
        value
            .unwrap_or(default)
            .parse::<Cidr>()
            .map_err(|e| p.push(format!("spec.network.{field}"), e))
            .ok()
    };
    let pod = parse(p, "podCidr", raw.pod_cidr.as_deref(), DEFAULT_POD_CIDR);
    let service = parse(
        p,
        "serviceCidr",
        raw.service_cidr.as_deref(),
        DEFAULT_SERVICE_CIDR,
    );
    (pod, service)
}

fn check_ssh_key(key: &str) -> Result<(), String> {
    let key = key.trim();
    let mut parts = key.split_whitespace();
    let kind = parts.next().unwrap_or_default();
    let known =
        kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-") || kind.starts_with("sk-");
    if !known || parts.next().is_none() || key.contains(['\n', '\r']) {
        return Err("is not an OpenSSH public key line like `ssh-ed25519 AAAA… comment`".into());
    }
    Ok(())
}

fn check_host(host: &str) -> Result<(), String> {
    let host = host.trim();
    if host.is_empty()
        || host.len() > 253
        || host.contains(|c: char| c.is_whitespace() || c == ',' || c == '/')
    {
        return Err(format!("`{host}` is not a host name or address"));
    }
    Ok(())
}

fn validate_proxy(p: &mut Problems, raw: &RawProxy) -> Proxy {
    for (field, value) in [
        ("httpProxy", &raw.http_proxy),
        ("httpsProxy", &raw.https_proxy),
    ] {
        if let Some(url) = value {
            let valid = (url.starts_with("http://") || url.starts_with("https://"))
                && url.len() > "https://".len()
                && !url.contains(char::is_whitespace)
                && !url.contains(['"', '\'', '\\']);
            if !valid {
                p.push(
                    format!("spec.proxy.{field}"),
                    format!("`{url}` is not a proxy URL like `http://proxy.example.com:3128`"),
                );
            }
        }
    }
    if raw.http_proxy.is_none() && raw.https_proxy.is_none() {
        p.push(
            "spec.proxy",
            "set `httpProxy`, `httpsProxy` or both (or drop `proxy`)",
        );
    }
    for (index, entry) in raw.no_proxy.iter().enumerate() {
        if entry.trim().is_empty()
            || entry.contains(|c: char| c.is_whitespace() || matches!(c, ',' | '"' | '\'' | '\\'))
        {
            p.push(
                format!("spec.proxy.noProxy[{index}]"),
                format!("`{entry}` must be one host, domain or CIDR (no spaces or commas)"),
            );
        }
    }
    Proxy {
        http_proxy: raw.http_proxy.clone(),
        https_proxy: raw.https_proxy.clone(),
        no_proxy: raw.no_proxy.iter().map(|e| e.trim().to_owned()).collect(),
    }
}
