//! The cluster's add-ons (CNI, vSphere CPI and CSI, StorageClasses): the
//! facts they are rendered from, gathered from vCenter and the store;
//! rendering (pure, `vkube_core::addons`); and the record of what was
//! delivered, so a later apply updates only what changed.
//!
//! Delivery: the first control-plane node applies the manifests after
//! `kubeadm init` (they travel in its bootstrap data); later changes are
//! applied by vkube through the API server (see `apply`).

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use vkube_core::addons::{
    self, AddonInput, CloudCredentials, DefaultStorage, Manifest, VcenterEndpoint,
};
use vkube_core::cluster::{ClusterSpec, DefaultStorageSpec};
use vkube_core::topology::{
    Categories, ObjectRef, Observed, ZoneLabel, TYPE_CLUSTER, TYPE_DATACENTER,
};
use vkube_store::{AddonDelivery, AddonRecord, CredentialStore, Store, Timestamp};
use vkube_vsphere::{Details, Inventory, Trust, VspherePort};

use crate::access;
use crate::error::{Error, Result};

/// Longest CSI `cluster-id` the driver accepts.
const CLUSTER_ID_MAX: usize = 64;

/// CSI `cluster-id`: unique per vCenter (name plus part of the uid), at most
/// 64 characters.
pub fn csi_cluster_id(cluster: &str, uid: &str) -> String {
    let uid: String = uid.chars().take(16).collect();
    let mut id = format!("{cluster}-{uid}");
    id.truncate(CLUSTER_ID_MAX);
    id
}

/// How the cluster reaches vCenter: the host and port vkube uses, and the
/// same trust vkube has — its CA file, or the certificate's SHA-1
/// thumbprint when vkube pins it. When vkube itself runs with
/// `--insecure`, the nodes pin the certificate vkube saw rather than skip
/// verification.
pub fn vcenter_endpoint(vsphere: &dyn VspherePort) -> Result<VcenterEndpoint> {
    let facts = vsphere.facts();
    let (thumbprint, ca_pem) = match facts.trust {
        Trust::CaFile(path) => {
            let pem = std::fs::read_to_string(&path).map_err(|e| Error::Input {
                what: format!("CA file `{}`", path.display()),
                problem: e.to_string(),
            })?;
            (None, Some(pem))
        }
        Trust::SystemRoots => (None, None),
        Trust::Thumbprint(sha1) => (Some(sha1), None),
    };
    Ok(VcenterEndpoint {
        server: facts.host,
        port: facts.port,
        thumbprint,
        ca_pem,
        insecure: false,
    })
}

/// Zones of the cluster's placement domains: the `k8s-zone` tag of each
/// domain's compute cluster and the `k8s-region` tag of its datacenter.
/// `None` when no domain's compute cluster carries a zone tag.
pub async fn zones(
    vsphere: &dyn VspherePort,
    inventory: &Inventory,
    spec: &ClusterSpec,
) -> Result<Option<(Categories, Vec<ZoneLabel>)>> {
    let categories = Categories::default();
    let tags = vsphere
        .tags(&[categories.region.as_str(), categories.zone.as_str()])
        .await?;
    let observed = Observed {
        inventory: vkube_vsphere::topology::inventory_facts(inventory),
        tags,
    };
    let mut zones = BTreeSet::new();
    for domain in spec.placement_domains() {
        let cluster = inventory.resolve(domain.compute_cluster(), "compute cluster")?;
        let zone = observed.tags_on(
            categories.zone.as_str(),
            &ObjectRef::new(TYPE_CLUSTER, &cluster.id),
        );
        let Some(zone) = zone.first() else { continue };
        let region = inventory.datacenter_of(&cluster.id).and_then(|dc| {
            observed
                .tags_on(
                    categories.region.as_str(),
                    &ObjectRef::new(TYPE_DATACENTER, &dc.id),
                )
                .first()
                .map(|t| t.name.clone())
        });
        zones.insert(ZoneLabel {
            region,
            zone: zone.name.clone(),
        });
    }
    Ok((!zones.is_empty()).then(|| (categories, zones.into_iter().collect())))
}

/// The default StorageClass's target: a datastore by its URL, or a policy.
pub fn default_storage(
    inventory: &Inventory,
    spec: &ClusterSpec,
) -> Result<Option<DefaultStorage>> {
    Ok(match spec.default_storage() {
        None => None,
        Some(DefaultStorageSpec::Policy(name)) => Some(DefaultStorage::StoragePolicy(name)),
        Some(DefaultStorageSpec::Datastore(path)) => {
            let entity = inventory.resolve(&path, "datastore")?;
            match &entity.details {
                Details::Datastore { url, .. } if !url.is_empty() => {
                    Some(DefaultStorage::DatastoreUrl(url.clone()))
                }
                _ => {
                    return Err(Error::Input {
                        what: format!("default datastore `{path}`"),
                        problem: "vCenter reports no datastore URL for it".into(),
                    })
                }
            }
        }
    })
}

/// Everything gathered from vCenter and the store that the add-ons need.
#[derive(Debug, Clone)]
pub struct AddonFacts {
    /// vCenter as the nodes reach it.
    pub vcenter: VcenterEndpoint,
    /// The cluster's own vCenter user.
    pub credentials: CloudCredentials,
    /// Datacenter names.
    pub datacenters: Vec<String>,
    /// Zones, when the cluster's compute clusters carry zone tags.
    pub zones: Option<(Categories, Vec<ZoneLabel>)>,
    /// Default StorageClass target.
    pub default_storage: Option<DefaultStorage>,
    /// CSI cluster id.
    pub cluster_id: String,
}

/// Gathers [`AddonFacts`]: the cloud credentials from the store, zone tags
/// and the default datastore's URL from vCenter.
pub async fn gather(
    vsphere: &dyn VspherePort,
    inventory: &Inventory,
    store: &(impl CredentialStore + ?Sized),
    spec: &ClusterSpec,
    uid: &str,
) -> Result<AddonFacts> {
    let stored = store.credentials(spec.cloud_credentials().as_str()).await?;
    let datacenter = inventory.resolve(spec.datacenter(), "datacenter")?;
    Ok(AddonFacts {
        vcenter: vcenter_endpoint(vsphere)?,
        credentials: CloudCredentials {
            username: stored.username,
            password: stored.password,
        },
        datacenters: vec![datacenter.name.clone()],
        zones: zones(vsphere, inventory, spec).await?,
        default_storage: default_storage(inventory, spec)?,
        cluster_id: csi_cluster_id(&spec.name().to_string(), uid),
    })
}

/// Runs `work` with the [`AddonInput`] of `spec` and `facts`.
async fn with_input<T>(
    store: &dyn Store,
    spec: &ClusterSpec,
    facts: &AddonFacts,
    work: impl FnOnce(&AddonInput<'_>) -> Result<T, addons::Error>,
) -> Result<T> {
    let endpoint = access::api_endpoint(store, spec).await?;
    let (categories, zones) = match &facts.zones {
        Some((categories, zones)) => (Some(categories), zones.as_slice()),
        None => (None, &[][..]),
    };
    let mirror = spec.registry().map(|r| r.mirror());
    let input = AddonInput {
        cluster: spec.name(),
        cluster_id: &facts.cluster_id,
        kubernetes: spec.kubernetes_version(),
        cni: spec.cni(),
        pod_cidr: spec.pod_cidr(),
        service_cidr: spec.service_cidr(),
        api_endpoint: endpoint,
        registry: mirror.as_deref(),
        vcenter: &facts.vcenter,
        credentials: &facts.credentials,
        datacenters: &facts.datacenters,
        categories,
        zones,
        default_storage: facts.default_storage.as_ref(),
        tunnel_offload_disabled: spec.disable_tunnel_offload(),
    };
    Ok(work(&input)?)
}

/// Renders every add-on of `spec` from `facts`.
pub async fn render(
    store: &dyn Store,
    spec: &ClusterSpec,
    facts: &AddonFacts,
) -> Result<Vec<Manifest>> {
    with_input(store, spec, facts, addons::render_all).await
}

/// Which cloud config to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloudConfig {
    /// The CPI's `vsphere.conf` and its credentials.
    Cpi,
    /// The CSI driver's `csi-vsphere.conf`.
    Csi,
}

/// The rendered cloud config, passwords replaced by `<redacted>` unless
/// `show_secrets`.
pub async fn cloud_config(
    store: &dyn Store,
    spec: &ClusterSpec,
    facts: &AddonFacts,
    which: CloudConfig,
    show_secrets: bool,
) -> Result<String> {
    with_input(store, spec, facts, |input| match which {
        CloudConfig::Cpi => addons::cpi::cpi_config(input, !show_secrets),
        CloudConfig::Csi => addons::csi::csi_config(input, !show_secrets),
    })
    .await
}

/// Whether a manifest holds any object (a StorageClass manifest without
/// zones or default storage holds only comments, and `kubectl apply`
/// refuses an empty input).
pub fn has_objects(manifest: &Manifest) -> bool {
    manifest.yaml.lines().any(|line| line.starts_with("kind:"))
}

/// SHA-256 of a manifest, hex.
pub fn digest(manifest: &Manifest) -> String {
    Sha256::digest(manifest.yaml.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Records for `manifests` delivered as `delivery`.
pub fn records(
    manifests: &[Manifest],
    delivery: AddonDelivery,
    node: Option<&str>,
    message: Option<&str>,
    now: Timestamp,
) -> Vec<AddonRecord> {
    manifests
        .iter()
        .map(|m| AddonRecord {
            addon: m.addon.as_str().to_owned(),
            component: m.component.clone(),
            version: m.version.clone(),
            digest: digest(m),
            delivery,
            node: node.map(str::to_owned),
            message: message.map(str::to_owned),
            updated_at: now,
        })
        .collect()
}

/// The manifests whose rendered digest differs from what was delivered
/// (or that were never delivered), and those still pending.
pub fn changed<'a>(manifests: &'a [Manifest], delivered: &[AddonRecord]) -> Vec<&'a Manifest> {
    manifests
        .iter()
        .filter(|m| {
            !delivered.iter().any(|r| {
                r.addon == m.addon.as_str()
                    && r.digest == digest(m)
                    && r.delivery != AddonDelivery::Pending
            })
        })
        .collect()
}
