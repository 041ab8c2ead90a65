//! Bootstrap data for one node: kubeadm configuration, the files and units
//! the node needs, and their packaging as cloud-init (Ubuntu, Rocky) or
//! Ignition (Flatcar) in guestinfo extraConfig keys.
//!
//! Pure rendering: everything comes in through [`NodeBootstrap`] and goes
//! out as strings. vkube-vsphere puts the [`guestinfo`] pairs on the VM.
//!
//! Assumes the template already has containerd, kubeadm, kubelet and
//! kubectl of the spec's Kubernetes version (image-builder OVAs do; on
//! Flatcar in `/opt/bin`) and one VMXNET3 NIC. The NIC is found by the MAC
//! vSphere gave it, never by name: the network config matches it by MAC
//! without renaming it, and the node's scripts look its name up at boot
//! (see [`script`]), so any template naming scheme works.
//!
//! # What stays readable where
//!
//! The bootstrap data holds secrets: the bootstrap token (every node), the
//! cluster CA keys (control-plane nodes) and the add-on manifests with the
//! cluster's vCenter password (the first control-plane node).
//!
//! - **guestinfo, seen from inside the guest** (any process that can talk
//!   to the VMware backdoor, root or not): cloud-init's VMware datasource
//!   overwrites `guestinfo.userdata` with `---` right after reading it, on
//!   every boot (the metadata's `redact` list, see [`metadata`]); on
//!   Flatcar, `vkube-guestinfo-clear.service` does the same for
//!   `guestinfo.ignition.config.data` on every boot (Ignition reads it on
//!   the first boot only). The metadata (host name, addresses) stays.
//! - **guestinfo, seen from vCenter**: the values vkube wrote stay in the
//!   VM's `config.extraConfig`, readable by vCenter users with read access
//!   to the VM, until vkube reconfigures the VM (guest-side overwrites are
//!   not written back to the VM's configuration). The runtime should clear
//!   them once the node has joined.
//! - **the node's disk, root only**: the bootstrap script deletes its own
//!   copies once kubeadm succeeded (kubeadm config with the token, the
//!   staged CA keys) and each secret-bearing add-on manifest once applied.
//!   What remains is what Kubernetes itself keeps (`/etc/kubernetes/pki`,
//!   kubeconfigs) and cloud-init's own cache of the user-data under
//!   `/var/lib/cloud/instance` (0600), which vkube leaves to cloud-init.
//! - The bootstrap token expires after [`NodeBootstrap::token_ttl`]; nodes
//!   created later need a fresh token from the runtime.

pub mod cloud_init;
pub mod containerd;
pub mod content;
pub mod guestinfo;
pub mod ignition;
pub mod kube_vip;
pub mod kubeadm;
pub mod metadata;
pub mod recover;
pub mod script;
pub mod token;

use std::net::IpAddr;
use std::time::Duration;

use super::error::Error;
use super::pki::ClusterPki;
use super::plan::NodeRole;
use super::spec::{ClusterSpec, IpAllocation};
use crate::addons::Manifest;
use crate::ipam::Lease;
use token::BootstrapToken;

/// API server port behind the VIP.
pub const API_SERVER_PORT: u16 = 6443;
/// Replaced on the node by the name of the NIC with the node's MAC.
pub const NIC_PLACEHOLDER: &str = "@VKUBE_NIC@";
/// Replaced on the node by its address (DHCP: detected at boot).
pub const NODE_IP_PLACEHOLDER: &str = "@VKUBE_NODE_IP@";

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
    /// The NIC's MAC address (vSphere assigns it at clone time): the
    /// network config and the node's scripts find the NIC by it.
    pub mac_address: &'a str,
    /// The node's address lease; required with static allocation.
    pub lease: Option<&'a Lease>,
    /// The API server VIP (fixed, or the VIP lease's address).
    pub vip: IpAddr,
    /// The cluster's bootstrap token.
    pub token: &'a BootstrapToken,
    /// How long the bootstrap token stays valid after `kubeadm init`
    /// creates it (rendered into the init node's config; must not be zero).
    pub token_ttl: Duration,
    /// Cluster key material (CAs go only to control-plane nodes).
    pub pki: &'a ClusterPki,
    /// Add-on manifests the first control-plane node applies after
    /// `kubeadm init`; ignored for every other role (pass `&[]`).
    pub addons: &'a [Manifest],
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

    /// The add-ons this node applies: all of them on the init node, none
    /// elsewhere.
    pub fn node_addons(&self) -> &[Manifest] {
        match self.role {
            NodeRole::Init => self.addons,
            NodeRole::ControlPlane | NodeRole::Worker => &[],
        }
    }

    /// The NIC's MAC in the kernel's spelling (lowercase, `:`-separated);
    /// fails unless it is six hex pairs.
    pub(crate) fn mac(&self) -> Result<String, Error> {
        let mac = self.mac_address.trim().to_ascii_lowercase();
        let valid = mac.split(':').count() == 6
            && mac
                .split(':')
                .all(|pair| pair.len() == 2 && pair.chars().all(|c| c.is_ascii_hexdigit()));
        if !valid {
            return Err(self.invalid(format!(
                "MAC address `{}` is not six hex pairs like `00:50:56:ab:cd:ef`",
                self.mac_address
            )));
        }
        Ok(mac)
    }

    /// The node's address as rendered: the lease's with static
    /// allocation, else [`NODE_IP_PLACEHOLDER`] for the script to fill in.
    pub(crate) fn node_ip(&self) -> Result<String, Error> {
        Ok(match self.static_lease()? {
            Some(lease) => lease.address.to_string(),
            None => NODE_IP_PLACEHOLDER.to_owned(),
        })
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

    /// An input the bootstrap data cannot be rendered from.
    pub(crate) fn invalid(&self, reason: String) -> Error {
        Error::Bootstrap {
            node: self.node.to_owned(),
            reason,
        }
    }
}

/// `text` as one single-quoted shell word.
pub(crate) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod script_tests;
#[cfg(test)]
pub(crate) mod tests;
