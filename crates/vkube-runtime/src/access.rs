//! Access to a cluster's Kubernetes API: the VIP endpoint and admin client
//! credentials issued from the cluster CA that vkube holds. Used by
//! `vkube cluster kubeconfig` and by the runtime itself (add-on updates,
//! bootstrap tokens), so the secret names live here only.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use vkube_core::cluster::bootstrap::API_SERVER_PORT;
use vkube_core::cluster::{
    render_admin_kubeconfig, vip_lease_node, CertificateAndKey, ClusterPki, ClusterSpec,
    RandomSource, Vip,
};
use vkube_store::{ClusterStore, LeaseFilter, StateStore, Store};

use crate::context::Context;
use crate::error::{Error, Result};

/// Store name of the cluster's key material.
pub const SECRET_PKI: &str = "pki";
/// Store name of the current bootstrap token.
pub const SECRET_TOKEN: &str = "bootstrap-token";

/// The cluster's key material, or [`Error::NotBootstrapped`].
pub async fn cluster_pki(store: &dyn ClusterStore, cluster: &str) -> Result<ClusterPki> {
    let text = store
        .secret(cluster, SECRET_PKI)
        .await?
        .ok_or_else(|| Error::NotBootstrapped {
            cluster: cluster.to_owned(),
            missing: "key material".into(),
        })?;
    serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        cluster: cluster.to_owned(),
        what: "PKI".into(),
        detail: e.to_string(),
    })
}

/// The control-plane VIP: fixed in the spec, or leased from its pool.
pub async fn vip(store: &dyn Store, spec: &ClusterSpec) -> Result<Option<IpAddr>> {
    Ok(match spec.control_plane().vip() {
        Vip::Address(address) => Some(*address),
        Vip::FromPool(_) => {
            let node = vip_lease_node(spec.name());
            let filter = LeaseFilter {
                pool: None,
                cluster: Some(spec.name().to_string()),
            };
            store
                .leases(&filter)
                .await?
                .into_iter()
                .find(|l| l.node == node)
                .map(|l| l.address)
        }
    })
}

/// `VIP:6443`, or [`Error::NotBootstrapped`] before the VIP is leased.
pub async fn api_endpoint(store: &dyn Store, spec: &ClusterSpec) -> Result<SocketAddr> {
    let vip = vip(store, spec)
        .await?
        .ok_or_else(|| Error::NotBootstrapped {
            cluster: spec.name().to_string(),
            missing: "control-plane VIP".into(),
        })?;
    Ok(SocketAddr::new(vip, API_SERVER_PORT))
}

/// Admin access to the cluster's API server.
#[derive(Debug, Clone)]
pub struct AdminAccess {
    /// `VIP:6443`.
    pub endpoint: SocketAddr,
    /// The cluster CA certificate (PEM).
    pub ca_pem: String,
    /// A client certificate and key for the admin group of the cluster's
    /// Kubernetes version.
    pub client: CertificateAndKey,
}

impl AdminAccess {
    /// A kubeconfig with these credentials. Secret: write it 0600.
    pub fn kubeconfig(&self, spec: &ClusterSpec, pki: &ClusterPki) -> String {
        render_admin_kubeconfig(spec.name(), &self.endpoint.to_string(), pki, &self.client)
    }
}

/// Issues admin credentials for `user`, valid `validity` from `issued_at`.
pub async fn issue_admin(
    store: &dyn StateStore,
    spec: &ClusterSpec,
    user: &str,
    issued_at: SystemTime,
    validity: Duration,
    random: &mut dyn RandomSource,
) -> Result<(AdminAccess, ClusterPki)> {
    let name = spec.name().to_string();
    let pki = cluster_pki(store, &name).await?;
    let endpoint = api_endpoint(store, spec).await?;
    let client =
        pki.admin_certificate(user, spec.kubernetes_version(), issued_at, validity, random)?;
    Ok((
        AdminAccess {
            endpoint,
            ca_pem: pki.ca.pair.cert_pem.clone(),
            client,
        },
        pki,
    ))
}

/// How long vkube's own admin certificate for API calls is valid.
const CLIENT_VALIDITY: Duration = Duration::from_secs(3600);

/// A client for the cluster's API server through the VIP, authenticated
/// with a short-lived admin certificate issued for this call.
pub async fn cluster_api(
    store: &dyn StateStore,
    spec: &ClusterSpec,
    ctx: &Context<'_>,
    timeout: Duration,
) -> Result<std::sync::Arc<dyn vkube_kube::ClusterApi>> {
    let mut random = |buf: &mut [u8]| ctx.random.fill(buf);
    let (access, _) = issue_admin(
        store,
        spec,
        "vkube",
        ctx.clock.now(),
        CLIENT_VALIDITY,
        &mut random,
    )
    .await?;
    ctx.cluster.api(&vkube_kube::ClusterAccess {
        endpoint: format!("https://{}", access.endpoint),
        ca_pem: access.ca_pem,
        client_cert_pem: access.client.cert_pem,
        client_key_pem: access.client.key_pem,
        timeout,
    })
}
