//! Cluster lifecycle, pure part: the cluster spec and its validation,
//! deterministic naming, planning, and rendering of everything a node boots
//! with (kubeadm, cloud-init, Ignition, guestinfo, key material, kubeconfig,
//! vSphere cloud config).
//!
//! No I/O, clock or randomness: callers pass the time and random bytes in,
//! and do the vSphere calls, storage and file writes themselves.

pub mod bootstrap;
pub mod bounds;
mod duration;
mod error;
mod health_check;
mod kubeconfig;
pub mod mac;
mod naming;
mod pki;
mod plan;
mod raw;
mod spec;
mod validate;
pub(crate) mod values;

pub use duration::{format_duration, parse_duration};
pub use error::{Error, Problem};
pub use health_check::{
    ConditionStatus, HealthCheck, MaxUnhealthy, UnhealthyCondition, DEFAULT_NODE_STARTUP_TIMEOUT,
    DEFAULT_UNHEALTHY_TIMEOUT, READY_CONDITION,
};
pub use kubeconfig::render_admin_kubeconfig;
pub use naming::{
    cluster_folder, markers, parse_vm_name, vip_lease_node, vm_name, MARKER_CLUSTER_NAME,
    MARKER_CLUSTER_UID, MARKER_DOMAIN, MARKER_INDEX, MARKER_KEYS, MARKER_NODE, MARKER_POOL,
    MARKER_SPEC_HASH,
};
pub use pki::{
    admin_group, CertificateAndKey, CertificateAuthority, CertificateUsage, ClusterPki, KeyPair,
    LeafRequest, PkiFile, RandomSource, ADMIN_GROUP, ADMIN_GROUP_SINCE_MINOR, ADMIN_VALIDITY,
    CA_VALIDITY, CLUSTER_CA_NAME, ETCD_CA_NAME, ETCD_CLIENT_NAME, ETCD_CLIENT_VALIDITY,
    FRONT_PROXY_CA_NAME, LEGACY_ADMIN_GROUP, NOT_BEFORE_BACKDATE,
};
pub use plan::{
    delete_order, plan, quorum_of, ApiView, DeleteReason, EtcdView, Hold, HoldReason, KubeNode,
    Leases, NodeRole, ObservedCluster, ObservedCondition, ObservedNode, Plan, PowerState,
    RegisteredNode, Step,
};
pub use raw::{
    RawClusterNetwork, RawClusterSpec, RawControlPlane, RawHealthCheck, RawIntOrPercent,
    RawMetadata, RawNodePool, RawPlacementDomain, RawProxy, RawRegistry, RawSpec, RawStorage,
    RawTaint, RawUnhealthyCondition, RawVip,
};
pub use spec::{
    CloneMode, ClusterSpec, ControlPlane, DefaultStorageSpec, GroupRole, IpAllocation, NodeGroup,
    NodePool, OsFamily, PlacementDomain, Proxy, Registry, Storage, Taint, TaintEffect, Vip,
    API_VERSION, CONTROL_PLANE_GROUP, DEFAULT_KUBE_VIP_IMAGE, DEFAULT_POD_CIDR,
    DEFAULT_SERVICE_CIDR, INDEX_DIGITS, KIND,
};
pub use values::{
    ClusterName, CredentialsName, DomainName, KubernetesVersion, NodePoolName,
    MAX_KUBERNETES_MINOR, MAX_NAME_LEN, MIN_KUBERNETES_MINOR,
};

#[cfg(test)]
pub(crate) mod external_tools;
#[cfg(test)]
mod health_check_tests;
#[cfg(test)]
mod pki_ecosystem_tests;
#[cfg(test)]
mod plan_lifecycle_tests;
#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod spec_tests;
