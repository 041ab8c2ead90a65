//! Bootstrap data for one node: kubeadm configuration, the files and units
//! the node needs, and their packaging as cloud-init (Ubuntu, Rocky) or
//! Ignition (Flatcar) in guestinfo extraConfig keys.
//!
//! Pure rendering: everything comes in through [`NodeBootstrap`] and goes
//! out as strings. vkube-vsphere puts the [`guestinfo`] pairs on the VM.
//!
//! Assumes the template already has containerd, kubeadm and kubelet of the
//! spec's Kubernetes version (image-builder OVAs do; on Flatcar in
//! `/opt/bin`), and one VMXNET3 NIC that vkube names `ens192`.

pub mod cloud_init;
pub mod content;
pub mod guestinfo;
pub mod ignition;
pub mod kubeadm;
pub mod metadata;
pub mod token;

use std::net::IpAddr;

use super::error::Error;
use super::pki::ClusterPki;
use super::plan::NodeRole;
use super::spec::{ClusterSpec, IpAllocation};
use crate::ipam::Lease;
use token::BootstrapToken;

/// Name vkube gives the node's NIC (netplan `set-name`); kube-vip and the
/// offload fix use it. It is also what predictable naming gives a VMXNET3
/// NIC in PCI slot 192, vSphere's first.
pub const NIC_NAME: &str = "ens192";
/// API server port behind the VIP.
pub const API_SERVER_PORT: u16 = 6443;

/// Everything one node's bootstrap data is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct NodeBootstrap<'a> {
    /// The cluster spec.
    pub spec: &'a ClusterSpec,
    /// VM name, used as host name and Kubernetes node name.
    pub node: &'a str,
    /// Node group: `cp` or a pool name.
    pub group: &'a str,
    /// kubeadm init, control-plane join, or worker join.
    pub role: NodeRole,
    /// The NIC's MAC address (vSphere assigns it at clone time), matched
    /// by the network config.
    pub mac_address: &'a str,
    /// The node's address lease; required with static allocation.
    pub lease: Option<&'a Lease>,
    /// The API server VIP (fixed, or the VIP lease's address).
    pub vip: IpAddr,
    /// The cluster's bootstrap token.
    pub token: &'a BootstrapToken,
    /// Cluster key material (CAs go only to control-plane nodes).
    pub pki: &'a ClusterPki,
}

impl NodeBootstrap<'_> {
    /// Whether this node runs the control plane.
    pub fn is_control_plane(&self) -> bool {
        self.role != NodeRole::Worker
    }

    /// `VIP:6443` (bracketed for IPv6), kubeadm's `controlPlaneEndpoint`.
    pub fn endpoint(&self) -> String {
        std::net::SocketAddr::new(self.vip, API_SERVER_PORT).to_string()
    }

    /// The lease to configure, `None` for DHCP; fails when static
    /// allocation has no lease.
    pub(crate) fn static_lease(&self) -> Result<Option<&Lease>, Error> {
        match (self.spec.ip_allocation(), self.lease) {
            (IpAllocation::Dhcp, _) => Ok(None),
            (IpAllocation::Static, Some(lease)) => Ok(Some(lease)),
            (IpAllocation::Static, None) => Err(Error::MissingLease {
                node: self.node.to_owned(),
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
