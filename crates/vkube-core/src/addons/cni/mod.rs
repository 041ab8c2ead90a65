//! The cluster's pod network (`spec.network.cni`): Cilium (the default) or
//! Calico, both as a VXLAN overlay with kube-proxy kept, each pinned per
//! Kubernetes minor ([`cilium::PINS`], [`calico::PINS`]).
//!
//! Why an overlay: it asks nothing of the vSphere network (no routes to pod
//! CIDRs on the physical routers, no BGP peering, no NSX SpoofGuard
//! exceptions for pod addresses), only UDP between the nodes. Why kube-proxy
//! stays: kubeadm installs it, and Cilium's replacement needs
//! a kernel and configuration vkube does not control on every template.
//!
//! # MTU
//! VXLAN costs 50 bytes per packet (outer Ethernet 14 + IPv4 20 + UDP 8 +
//! VXLAN 8). Neither CNI gets a fixed MTU from vkube: both detect the MTU
//! of the node's uplink and subtract the overlay's overhead themselves
//! (Cilium: `mtu: 0`; Calico: Felix writes the detected value to
//! `/var/lib/calico/mtu`, which its CNI plugin reads when the network
//! config says `mtu: 0`). A 1500-byte port group gives pods 1450, a
//! 9000-byte one 8950, with nothing to keep in step.
//!
//! # VMXNET3 tunnel offload (seed 000, KKP's vSphere documentation)
//! On VMware hardware compatibility version 14/15 and later, the VMXNET3
//! driver offers UDP tunnel segmentation offload (`tx-udp_tnl-segmentation`,
//! `tx-udp_tnl-csum-segmentation`), and overlay traffic (VXLAN, Geneve)
//! breaks with it: ICMP passes, TCP does not (`cilium-health` shows it);
//! KKP saw it with Cilium and Canal on Ubuntu 22.04. The fix is on the
//! node: vkube's `disableTunnelOffload` runs `ethtool -K <nic>
//! tx-udp_tnl-segmentation off tx-udp_tnl-csum-segmentation off` at every
//! boot, and [`AddonInput::tunnel_offload_disabled`] says whether it does.
//! - Cilium has no setting for this; it relies on the node fix.
//! - Calico does have one: Felix's `FeatureDetectOverride`
//!   `ChecksumOffloadBroken=true` turns checksum offload off on
//!   `vxlan.calico`, which also stops TSO on that device, so the kernel
//!   segments before encapsulating and the NIC never sees tunnel-GSO
//!   packets. That was Calico's own answer to the VMXNET3 report (issue
//!   4727, fixed by making it the default in PR 6842; the default later
//!   went back to kernels before 5.7 only, leaving the override to those
//!   who hit it). vkube sets it only when the nodes keep the NIC offload on.

mod calico;
mod cilium;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::ops::RangeInclusive;

use super::k8s::{binding, Labels, Meta, Object, RoleRef, Stream, Subject};
use super::{Addon, AddonInput, Cni, Error, Manifest};
use crate::ipam::Cidr;

pub use calico::PINS as CALICO_PINS;
pub use cilium::PINS as CILIUM_PINS;

/// Namespace both CNIs run in (what kubeadm clusters and the upstream
/// manifests use; `system-node-critical` pods are allowed there).
const NAMESPACE: &str = "kube-system";

/// Renders the CNI add-on: `None` for `cni: none`, else the manifest of the
/// CNI pinned for the cluster's Kubernetes minor.
pub fn render(input: &AddonInput<'_>) -> Result<Option<Manifest>, Error> {
    match input.cni {
        Cni::None => Ok(None),
        Cni::Cilium => cilium::render(input).map(Some),
        Cni::Calico => calico::render(input).map(Some),
    }
}

/// One row of a pin table: the upstream release rendered for a range of
/// Kubernetes minors, and where upstream says it supports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// Kubernetes minors (`1.x`) this release is rendered for.
    pub minors: RangeInclusive<u64>,
    /// The release, e.g. `v1.18.14`.
    pub version: &'static str,
    /// The upstream statement that the release is tested on those minors.
    pub source: &'static str,
}

/// The pin for the input's Kubernetes minor, or `UnsupportedVersion`.
fn pinned<'t>(pins: &'t [Pin], component: &str, input: &AddonInput<'_>) -> Result<&'t Pin, Error> {
    super::pinned(pins, |pin| pin.minors.clone(), input, component)
}

/// The minor of a `vX.Y.Z` release (`18` for `v1.18.14`).
fn release_minor(version: &str) -> u64 {
    version
        .trim_start_matches('v')
        .split('.')
        .nth(1)
        .and_then(|minor| minor.parse().ok())
        .expect("pin tables hold vX.Y.Z versions")
}

/// Both CNIs are rendered IPv4-only (`enable-ipv6: false`,
/// `FELIX_IPV6SUPPORT=false`): the pod CIDR must be IPv4.
fn ipv4_pod_cidr(component: &str, input: &AddonInput<'_>) -> Result<Cidr, Error> {
    match input.pod_cidr.network() {
        IpAddr::V4(_) => Ok(input.pod_cidr),
        IpAddr::V6(_) => Err(Error::invalid(
            component,
            format!(
                "pod CIDR {} is IPv6; vkube renders the pod network IPv4-only",
                input.pod_cidr
            ),
        )),
    }
}

/// Binds the ClusterRole `name` to the ServiceAccount `name` (both CNIs
/// name a component's account and role alike).
fn account_binding(name: &str, labels: &Labels) -> Object<impl serde::Serialize> {
    binding(
        Meta::cluster(name, labels),
        RoleRef::cluster_role(name),
        vec![Subject::service_account(name, NAMESPACE)],
    )
}

/// The manifest of `component` at `version`.
fn manifest(component: &str, version: &str, stream: Stream) -> Manifest {
    stream.into_manifest(
        Addon::Cni,
        component,
        version,
        &format!("20-cni-{component}.yaml"),
    )
}
