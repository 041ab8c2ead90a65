//! The validated cluster spec: [`ClusterSpec`] and its parts, which can
//! only hold a spec vkube can build (`apiVersion: vkube.dev/v1alpha1`,
//! `kind: Cluster`; the YAML form is `raw.rs`, the checks `validate.rs`).
//!
//! Owns the node-group view the planner uses, the canonical YAML form and
//! the per-node-group [`NodeGroup::spec_hash`]. Leaves out anything that needs
//! vCenter or the store: resolving inventory paths is `vkube-vsphere`'s job
//! (one pass, one report), and checking that IP pools exist and fit is done
//! with the pools in hand by [`ClusterSpec::check_pools`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{Error, Problems};
use super::health_check::HealthCheck;
use super::raw::{
    RawClusterNetwork, RawClusterSpec, RawControlPlane, RawMetadata, RawNodePool,
    RawPlacementDomain, RawProxy, RawRegistry, RawSpec, RawStorage, RawTaint, RawVip,
};
use super::values::{ClusterName, CredentialsName, DomainName, KubernetesVersion, NodePoolName};
use crate::addons::Cni;
use crate::ipam::{Cidr, IpPool, PoolName};

/// The only `apiVersion` this version of vkube reads.
pub const API_VERSION: &str = "vkube.dev/v1alpha1";
/// The `kind` of a cluster document.
pub const KIND: &str = "Cluster";
/// Node group name of the control plane; node pools may not use it.
pub const CONTROL_PLANE_GROUP: &str = "cp";
/// kube-vip image used unless `spec.controlPlane.kubeVipImage` says otherwise.
pub const DEFAULT_KUBE_VIP_IMAGE: &str = "ghcr.io/kube-vip/kube-vip:v0.8.0";
/// Pod network used unless `spec.network.podCidr` says otherwise.
///
/// Not `192.168.0.0/16` (Calico's own default, and vkube's before): that
/// is the range most office and home LANs, VPNs and lab networks live in,
/// and a pod network overlapping the node network, a DNS server or an
/// admin's VPN makes that traffic vanish into the overlay.
/// `10.244.0.0/16` is the conventional Kubernetes pod range (kubeadm's
/// documentation, flannel, kind), stays clear of the default service range
/// `10.96.0.0/12`, and leaves room for 256 nodes with the controller
/// manager's default /24 per node. Any collision with the node network is
/// still refused: [`ClusterSpec::check_pools`] checks the pod and service
/// networks against every IP pool the spec uses.
pub const DEFAULT_POD_CIDR: &str = "10.244.0.0/16";
/// Service network used unless `spec.network.serviceCidr` says otherwise.
pub const DEFAULT_SERVICE_CIDR: &str = "10.96.0.0/12";
/// Digits reserved for a node's index in VM names (`<cluster>-<pool>-9999`).
pub const INDEX_DIGITS: usize = 4;

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

/// A validated registry mirror (`spec.registry`): every image of the
/// cluster (Kubernetes, kube-vip, add-ons) is pulled from under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    pub(crate) host: String,
    pub(crate) path: Option<String>,
    pub(crate) ca_bundle: Option<String>,
    pub(crate) insecure_skip_verify: bool,
}

impl Registry {
    /// The mirror prefix `host[:port][/path]`, e.g. `harbor.example.com/k8s`,
    /// as [`crate::addons::image`] takes it.
    pub fn mirror(&self) -> String {
        match &self.path {
            Some(path) => format!("{}/{path}", self.host),
            None => self.host.clone(),
        }
    }
    /// `host[:port]`, e.g. `harbor.example.com` or `10.0.0.9:5000`.
    pub fn host(&self) -> &str {
        &self.host
    }
    /// The host without its port: what `NO_PROXY` lists.
    pub fn host_name(&self) -> &str {
        match self.host.strip_prefix('[') {
            // `[fd00::1]:5000`
            Some(rest) => rest.split(']').next().unwrap_or(rest),
            None => self.host.split(':').next().unwrap_or(&self.host),
        }
    }
    /// The repository path prefix under the host, e.g. `k8s`, if any.
    pub fn path(&self) -> Option<&str> {
        self.path.as_deref()
    }
    /// PEM CA certificates to trust for the mirror, if any.
    pub fn ca_bundle(&self) -> Option<&str> {
        self.ca_bundle.as_deref()
    }
    /// Whether TLS verification of the mirror is skipped.
    pub fn insecure_skip_verify(&self) -> bool {
        self.insecure_skip_verify
    }
}

/// Where the default StorageClass provisions volumes, as the spec names it
/// (`spec.storage`, else the control plane domain's datastore). The
/// runtime resolves a datastore path to its URL for the CSI driver.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DefaultStorageSpec {
    /// A datastore by inventory path (never a datastore cluster: the CSI
    /// driver cannot provision on one).
    Datastore(String),
    /// A storage policy (SPBM) by name.
    Policy(String),
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
    pub(crate) health_check: Option<HealthCheck>,
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
    /// When control-plane nodes are replaced for being unhealthy; `None`:
    /// never.
    pub fn health_check(&self) -> Option<&HealthCheck> {
        self.health_check.as_ref()
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
    pub(crate) health_check: Option<HealthCheck>,
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
    /// When the pool's nodes are replaced for being unhealthy; `None`: never.
    pub fn health_check(&self) -> Option<&HealthCheck> {
        self.health_check.as_ref()
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
    pub(crate) cni: Cni,
    pub(crate) registry: Option<Registry>,
    pub(crate) cloud_credentials: CredentialsName,
    pub(crate) default_storage: Option<DefaultStorageSpec>,
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
    health_check: Option<&'a HealthCheck>,
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
    /// When the group's nodes are replaced for being unhealthy; `None`:
    /// never. Not part of [`spec_hash`](Self::spec_hash).
    pub fn health_check(&self) -> Option<&'a HealthCheck> {
        self.health_check
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
    /// CPU, memory and disk (never the health check, labels or taints). Stable across vkube versions as long as these
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
    /// The pod network plugin (`spec.network.cni`, default Cilium).
    pub fn cni(&self) -> Cni {
        self.cni
    }
    /// The registry mirror every image is pulled through, if any.
    pub fn registry(&self) -> Option<&Registry> {
        self.registry.as_ref()
    }
    /// Name of the stored vCenter credentials CPI and CSI run as.
    pub fn cloud_credentials(&self) -> &CredentialsName {
        &self.cloud_credentials
    }
    /// Where the default StorageClass provisions: `spec.storage`, else the
    /// control plane domain's datastore when it is a plain datastore, else
    /// nowhere (no default class: a datastore cluster cannot be the CSI
    /// default datastore).
    pub fn default_storage(&self) -> Option<DefaultStorageSpec> {
        self.default_storage.clone()
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
            health_check: control_plane.health_check.as_ref(),
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
            health_check: pool.health_check.as_ref(),
        }));
        groups
    }

    /// The group called `name` (`cp` for the control plane).
    pub fn group(&self, name: &str) -> Option<NodeGroup<'_>> {
        self.groups().into_iter().find(|g| g.name == name)
    }

    /// Checks the spec against the IP pools it names, with all problems
    /// together: every `ipPool` and `vip.fromPool` must exist, a fixed VIP
    /// must sit in the control plane domain's pool network (kube-vip
    /// announces it by ARP on that segment), and neither the pod nor the
    /// service network may overlap the network of any pool the spec uses
    /// (nodes would lose the route to that part of their own network).
    /// Pure; the caller loads pools.
    pub fn check_pools(&self, pools: &[IpPool]) -> Result<(), Error> {
        let mut problems = Problems::default();
        let find = |name: &PoolName| pools.iter().find(|p| p.name() == name);
        // Every pool the spec uses, with the field that names it first.
        let mut used: Vec<(String, &IpPool)> = Vec::new();
        for (index, domain) in self.placement_domains.iter().enumerate() {
            if let Some(pool) = &domain.ip_pool {
                let field = format!("spec.placementDomains[{index}].ipPool");
                match find(pool) {
                    Some(found) => used.push((field, found)),
                    None => problems.push(field, format!("unknown IP pool `{pool}`")),
                }
            }
        }
        if let Vip::FromPool(name) = &self.control_plane.vip {
            if let Some(found) = find(name) {
                used.push(("spec.controlPlane.vip.fromPool".into(), found));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        used.retain(|(_, pool)| seen.insert(pool.name().clone()));
        for (field, cidr, what) in [
            ("spec.network.podCidr", self.pod_cidr, "pod network"),
            (
                "spec.network.serviceCidr",
                self.service_cidr,
                "service network",
            ),
        ] {
            for (named_at, pool) in &used {
                if cidr.range().intersection(&pool.network().range()).is_some() {
                    problems.push(
                        field,
                        format!(
                            "{cidr} overlaps network {} of IP pool `{}` ({named_at}): choose a {what} that no node network uses",
                            pool.network(),
                            pool.name(),
                        ),
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
                    if *address == pool.gateway() {
                        problems.push(
                            "spec.controlPlane.vip.address",
                            format!("{address} is the gateway of IP pool `{}`", pool.name()),
                        );
                    }
                    if pool.name_servers().contains(address) {
                        problems.push(
                            "spec.controlPlane.vip.address",
                            format!("{address} is a name server of IP pool `{}`", pool.name()),
                        );
                    }
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

    /// Addresses a full set of nodes takes from each IP pool: every node in
    /// a domain with a pool (nodes go round-robin over a pool's domains by
    /// index), and the VIP when it comes from a pool. A rolling
    /// replacement briefly needs one more per node group.
    pub fn addresses_needed(&self) -> BTreeMap<PoolName, u64> {
        let mut needed: BTreeMap<PoolName, u64> = BTreeMap::new();
        if self.ip_allocation == IpAllocation::Static {
            for group in self.groups() {
                let domains = group.domains.len() as u64;
                for (slot, domain) in group.domains.iter().enumerate() {
                    let replicas = u64::from(group.replicas);
                    let count = replicas / domains + u64::from((slot as u64) < replicas % domains);
                    if let Some(pool) = self.domain(domain).and_then(|d| d.ip_pool.clone()) {
                        *needed.entry(pool).or_default() += count;
                    }
                }
            }
        }
        if let Vip::FromPool(pool) = &self.control_plane.vip {
            *needed.entry(pool.clone()).or_default() += 1;
        }
        needed
    }

    /// Checks that each pool can hand out what [`addresses_needed`] says,
    /// given `available` (free addresses plus those this cluster already
    /// holds), by pool name. Problems name the node counts to lower.
    ///
    /// [`addresses_needed`]: Self::addresses_needed
    pub fn check_capacity(&self, available: &BTreeMap<String, u128>) -> Result<(), Error> {
        let mut problems = Problems::default();
        for (pool, needed) in self.addresses_needed() {
            let free = available.get(pool.as_str()).copied().unwrap_or(0);
            if u128::from(needed) > free {
                problems.push(
                    "spec.nodePools",
                    format!("the nodes need {needed} addresses from IP pool `{pool}`, which has {free} left for this cluster: lower the replicas or grow the pool"),
                );
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
                    health_check: control_plane.health_check.as_ref().map(HealthCheck::to_raw),
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
                        health_check: p.health_check.as_ref().map(HealthCheck::to_raw),
                    })
                    .collect(),
                network: Some(RawClusterNetwork {
                    pod_cidr: Some(self.pod_cidr.to_string()),
                    service_cidr: Some(self.service_cidr.to_string()),
                    cni: Some(self.cni.as_str().into()),
                }),
                ssh_authorized_keys: self.ssh_authorized_keys.clone(),
                ntp_servers: self.ntp_servers.clone(),
                proxy: self.proxy.as_ref().map(|p| RawProxy {
                    http_proxy: p.http_proxy.clone(),
                    https_proxy: p.https_proxy.clone(),
                    no_proxy: p.no_proxy.clone(),
                }),
                disable_tunnel_offload: self.disable_tunnel_offload,
                registry: self.registry.as_ref().map(|r| RawRegistry {
                    mirror: r.mirror(),
                    ca_bundle: r.ca_bundle.clone(),
                    insecure_skip_verify: r.insecure_skip_verify,
                }),
                cloud_credentials: self.cloud_credentials.to_string(),
                storage: self.default_storage.as_ref().map(|s| match s {
                    DefaultStorageSpec::Datastore(path) => RawStorage {
                        default_datastore: Some(path.clone()),
                        storage_policy: None,
                    },
                    DefaultStorageSpec::Policy(name) => RawStorage {
                        default_datastore: None,
                        storage_policy: Some(name.clone()),
                    },
                }),
            },
        }
    }

    /// Canonical YAML: every default written out, fields in a fixed order.
    /// Parsing it back gives an equal spec.
    pub fn to_yaml(&self) -> String {
        serde_yaml::to_string(&self.to_raw()).expect("plain structs serialize")
    }
}
