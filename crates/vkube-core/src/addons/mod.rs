//! Cluster add-ons that every vSphere cluster needs, rendered by vkube from
//! what it already knows: the CNI (Cilium or Calico), the vSphere cloud
//! provider (CPI: `vsphere.conf` and the cloud-controller-manager), the
//! vSphere CSI driver (`csi-vsphere.conf`, controller and node plugin) and
//! StorageClasses (one per zone, plus a default class).
//!
//! Pure: [`AddonInput`] carries plain values in; [`Manifest`]s come out as
//! YAML text. Versions are pinned per Kubernetes minor (each add-on module
//! owns its pin table). Every image reference goes through [`image`], so one
//! `spec.registry` mirror serves an air-gapped install.
//!
//! Delivery is not done here: the first control-plane node applies the
//! manifests after `kubeadm init` (see `cluster::bootstrap::content`), and
//! the runtime updates them when versions or settings change.

pub mod cni;
pub mod cpi;
pub mod csi;
pub(crate) mod k8s;
pub mod storage;
#[cfg(test)]
pub(crate) mod testing;
mod vsphere;

use std::fmt;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterName, KubernetesVersion};
use crate::ipam::Cidr;
use crate::topology::{Categories, ZoneLabel};

/// Kubernetes minors vkube renders bootstrap data and add-ons for.
pub const SUPPORTED_MINORS: RangeInclusive<u64> = 28..=33;

/// The cluster's pod network plugin (`spec.network.cni`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Cni {
    /// Cilium (eBPF), VXLAN overlay; the default.
    #[default]
    Cilium,
    /// Calico with VXLAN encapsulation.
    Calico,
    /// No CNI: the user installs one (nodes stay NotReady until then).
    None,
}

impl Cni {
    /// `cilium`, `calico` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cni::Cilium => "cilium",
            Cni::Calico => "calico",
            Cni::None => "none",
        }
    }
}

impl fmt::Display for Cni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Cni {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "cilium" => Ok(Cni::Cilium),
            "calico" => Ok(Cni::Calico),
            "none" => Ok(Cni::None),
            other => Err(format!("unknown CNI `{other}`: use cilium, calico or none")),
        }
    }
}

/// Which add-on a manifest belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Addon {
    /// The pod network.
    Cni,
    /// vSphere cloud-controller-manager.
    Cpi,
    /// vSphere CSI driver.
    Csi,
    /// StorageClasses.
    StorageClasses,
}

impl Addon {
    /// `cni`, `cpi`, `csi`, `storage-classes`.
    pub fn as_str(self) -> &'static str {
        match self {
            Addon::Cni => "cni",
            Addon::Cpi => "cpi",
            Addon::Csi => "csi",
            Addon::StorageClasses => "storage-classes",
        }
    }
}

/// One rendered add-on: a multi-document YAML stream applied as a whole.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Which add-on.
    pub addon: Addon,
    /// Component name, e.g. `cilium`, `vsphere-cloud-controller-manager`.
    pub component: String,
    /// Upstream version, e.g. `v1.16.5`.
    pub version: String,
    /// File name on the node, ordered by prefix: `20-cni-cilium.yaml`.
    pub file_name: String,
    /// The YAML stream (`---` separated documents).
    pub yaml: String,
    /// Whether `yaml` holds credentials (a Secret with the vCenter password).
    pub has_secrets: bool,
    /// Every image the manifest references (after the registry rewrite).
    pub images: Vec<String>,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("addon", &self.addon)
            .field("component", &self.component)
            .field("version", &self.version)
            .field("file_name", &self.file_name)
            .field("has_secrets", &self.has_secrets)
            .finish_non_exhaustive()
    }
}

/// How vCenter is reached from inside the cluster (CPI and CSI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VcenterEndpoint {
    /// Host name or address, as the nodes resolve it.
    pub server: String,
    /// Port, normally 443.
    pub port: u16,
    /// SHA-1 thumbprint (`AA:BB:…`) to pin, if any.
    pub thumbprint: Option<String>,
    /// PEM CA bundle to verify vCenter with, if any.
    pub ca_pem: Option<String>,
    /// Skip TLS verification (labs only; vkube warns).
    pub insecure: bool,
}

/// The cluster's own vCenter user for CPI and CSI (never vkube's login).
#[derive(Clone, PartialEq, Eq)]
pub struct CloudCredentials {
    /// `user@domain`.
    pub username: String,
    /// Its password. Secret.
    pub password: String,
}

impl fmt::Debug for CloudCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Where the default StorageClass provisions volumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultStorage {
    /// A datastore, by its URL (`ds:///vmfs/volumes/<uuid>/`).
    DatastoreUrl(String),
    /// A storage policy (SPBM) by name.
    StoragePolicy(String),
}

/// Everything the add-ons are rendered from.
#[derive(Debug, Clone)]
pub struct AddonInput<'a> {
    /// The cluster's name.
    pub cluster: &'a ClusterName,
    /// CSI `cluster-id`: unique per vCenter, at most 64 characters.
    pub cluster_id: &'a str,
    /// Kubernetes release (selects the pinned add-on versions).
    pub kubernetes: &'a KubernetesVersion,
    /// The pod network plugin.
    pub cni: Cni,
    /// Pod network.
    pub pod_cidr: Cidr,
    /// Service network.
    pub service_cidr: Cidr,
    /// The API server behind the VIP, e.g. `10.20.0.5:6443` (CNIs that
    /// must reach it before the `kubernetes` Service works use it).
    pub api_endpoint: SocketAddr,
    /// Registry mirror prefix for every image, e.g. `harbor.local/k8s`.
    pub registry: Option<&'a str>,
    /// vCenter as the cluster reaches it.
    pub vcenter: &'a VcenterEndpoint,
    /// The cluster's own vCenter user.
    pub credentials: &'a CloudCredentials,
    /// Datacenter names the cluster's nodes run in.
    pub datacenters: &'a [String],
    /// Region/zone tag categories, when the cluster uses zones.
    pub categories: Option<&'a Categories>,
    /// The zones the cluster spans (one StorageClass each).
    pub zones: &'a [ZoneLabel],
    /// Where the default StorageClass provisions, if anywhere.
    pub default_storage: Option<&'a DefaultStorage>,
    /// Whether nodes turn off VMXNET3 tunnel offload (overlay CNIs need it
    /// on hardware version 14+).
    pub tunnel_offload_disabled: bool,
}

/// A rendering failure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The Kubernetes minor has no pinned version of this add-on.
    #[error("{component} has no version pinned for Kubernetes {version} (vkube supports v1.{}–v1.{})", SUPPORTED_MINORS.start(), SUPPORTED_MINORS.end())]
    UnsupportedVersion {
        /// The add-on component.
        component: String,
        /// The Kubernetes version asked for.
        version: String,
    },
    /// Inputs the add-on cannot be rendered from.
    #[error("cannot render {component}: {reason}")]
    Invalid {
        /// The add-on component.
        component: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// An [`Error::Invalid`] for `component`.
    pub(crate) fn invalid(component: &str, reason: impl Into<String>) -> Error {
        Error::Invalid {
            component: component.to_owned(),
            reason: reason.into(),
        }
    }
}

/// The first of `pins` whose Kubernetes minors (`minors_of(pin)`) hold the
/// input's, or [`Error::UnsupportedVersion`] for `component`.
pub(crate) fn pinned<'t, P>(
    pins: &'t [P],
    minors_of: impl Fn(&P) -> RangeInclusive<u64>,
    input: &AddonInput<'_>,
    component: &str,
) -> Result<&'t P, Error> {
    let minor = input.kubernetes.minor();
    pins.iter()
        .find(|pin| input.kubernetes.major() == 1 && minors_of(pin).contains(&minor))
        .ok_or_else(|| Error::UnsupportedVersion {
            component: component.to_owned(),
            version: input.kubernetes.to_string(),
        })
}

/// `reference` (a full image reference such as
/// `quay.io/cilium/cilium:v1.16.5`) under `registry`, when one is set:
/// the original registry host is replaced by the mirror prefix, the
/// repository path and tag or digest are kept
/// (`harbor.local/k8s/cilium/cilium:v1.16.5`).
pub fn image(registry: Option<&str>, reference: &str) -> String {
    let Some(mirror) = registry else {
        return reference.to_owned();
    };
    let mirror = mirror.trim_end_matches('/');
    // The first path segment is a registry host when it has a `.` or `:`
    // or is `localhost` (the Docker reference grammar); else the reference
    // is on Docker Hub.
    let path = match reference.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            rest
        }
        Some(_) => reference,
        None => return format!("{mirror}/library/{reference}"),
    };
    format!("{mirror}/{path}")
}

/// `KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` naming the API
/// server behind the VIP, for the pods that must reach it before the
/// `kubernetes` Service works (that needs kube-proxy or the CNI's
/// replacement first): client-go's in-cluster config reads them.
pub(crate) fn api_server_env(input: &AddonInput<'_>) -> [(&'static str, String); 2] {
    [
        (
            "KUBERNETES_SERVICE_HOST",
            input.api_endpoint.ip().to_string(),
        ),
        (
            "KUBERNETES_SERVICE_PORT",
            input.api_endpoint.port().to_string(),
        ),
    ]
}

/// Every add-on of the cluster, in apply order: CNI, CPI, CSI,
/// StorageClasses. With `cni: none` the CNI is left out.
pub fn render_all(input: &AddonInput<'_>) -> Result<Vec<Manifest>, Error> {
    let mut manifests = Vec::new();
    if let Some(cni) = cni::render(input)? {
        manifests.push(cni);
    }
    manifests.push(cpi::render(input)?);
    manifests.push(csi::render(input)?);
    manifests.push(storage::render(input)?);
    Ok(manifests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_rewrite_keeps_path_and_tag() {
        assert_eq!(
            image(None, "quay.io/cilium/cilium:v1.16.5"),
            "quay.io/cilium/cilium:v1.16.5"
        );
        let m = Some("harbor.local/k8s/");
        assert_eq!(
            image(m, "quay.io/cilium/cilium:v1.16.5"),
            "harbor.local/k8s/cilium/cilium:v1.16.5"
        );
        assert_eq!(
            image(m, "registry.k8s.io/pause:3.9"),
            "harbor.local/k8s/pause:3.9"
        );
        assert_eq!(
            image(m, "calico/node:v3.28.2"),
            "harbor.local/k8s/calico/node:v3.28.2"
        );
        assert_eq!(image(m, "busybox"), "harbor.local/k8s/library/busybox");
        assert_eq!(
            image(m, "localhost:5000/x@sha256:ab"),
            "harbor.local/k8s/x@sha256:ab"
        );
    }

    #[test]
    fn cni_names_round_trip() {
        for cni in [Cni::Cilium, Cni::Calico, Cni::None] {
            assert_eq!(cni.as_str().parse::<Cni>().unwrap(), cni);
        }
        assert!("flannel"
            .parse::<Cni>()
            .unwrap_err()
            .contains("cilium, calico or none"));
    }
}
