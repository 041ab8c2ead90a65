//! How the runtime reaches a cluster itself: its Kubernetes API through the
//! control-plane VIP, and its etcd members on the control-plane nodes'
//! addresses, both with short-lived certificates vkube issues from the
//! cluster's CAs. Behind [`ClusterConnector`] so the runtime's tests run
//! against an in-memory cluster; [`LiveConnector`] is the real one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use vkube_core::cluster::{ClusterPki, ETCD_CLIENT_NAME, ETCD_CLIENT_VALIDITY};
use vkube_kube::etcd::{
    ClusterHealth, EtcdAccess, EtcdClient, EtcdError, MemberId, MemberList, Removal,
};
use vkube_kube::{ClusterAccess, ClusterApi, KubeClient};

use crate::context::Context;
use crate::error::Result;

/// The etcd membership operations vkube needs.
#[async_trait]
pub trait EtcdMembers: Send + Sync {
    /// Every member.
    async fn members(&self) -> std::result::Result<MemberList, EtcdError>;

    /// Each member's health, and the leader.
    async fn health(&self) -> std::result::Result<ClusterHealth, EtcdError>;

    /// Remove `member`, refused when the rest would lack a healthy quorum.
    async fn remove_member(&self, member: MemberId) -> std::result::Result<Removal, EtcdError>;
}

#[async_trait]
impl EtcdMembers for EtcdClient {
    async fn members(&self) -> std::result::Result<MemberList, EtcdError> {
        EtcdClient::members(self).await
    }

    async fn health(&self) -> std::result::Result<ClusterHealth, EtcdError> {
        EtcdClient::health(self).await
    }

    async fn remove_member(&self, member: MemberId) -> std::result::Result<Removal, EtcdError> {
        EtcdClient::remove_member(self, member).await
    }
}

/// Opens clients for a cluster's API server and etcd.
pub trait ClusterConnector: Send + Sync {
    /// A client for the API server described by `access`.
    fn api(&self, access: &ClusterAccess) -> Result<Arc<dyn ClusterApi>>;

    /// A client for the etcd members described by `access`.
    fn etcd(&self, access: &EtcdAccess) -> Result<Arc<dyn EtcdMembers>>;
}

/// Real clients: kube-rs for the API server, etcd's JSON gateway for etcd.
#[derive(Debug, Default, Clone, Copy)]
pub struct LiveConnector;

impl ClusterConnector for LiveConnector {
    fn api(&self, access: &ClusterAccess) -> Result<Arc<dyn ClusterApi>> {
        Ok(Arc::new(KubeClient::new(access)?))
    }

    fn etcd(&self, access: &EtcdAccess) -> Result<Arc<dyn EtcdMembers>> {
        Ok(Arc::new(EtcdClient::new(access)?))
    }
}

/// etcd's client port on a control-plane node.
pub const ETCD_CLIENT_PORT: u16 = 2379;

/// What reaches the etcd members at `endpoints` (client URLs such as
/// `https://10.20.0.11:2379`), with a client certificate from the
/// cluster's etcd CA valid for [`ETCD_CLIENT_VALIDITY`].
pub fn etcd_access(
    pki: &ClusterPki,
    endpoints: &[String],
    ctx: &Context<'_>,
    timeout: Duration,
) -> Result<EtcdAccess> {
    let mut random = |buf: &mut [u8]| ctx.random.fill(buf);
    let client = pki.etcd_client_certificate(
        ETCD_CLIENT_NAME,
        ctx.clock.now(),
        ETCD_CLIENT_VALIDITY,
        &mut random,
    )?;
    Ok(EtcdAccess {
        endpoints: endpoints.to_vec(),
        ca_pem: pki.etcd_ca.pair.cert_pem.clone(),
        client_cert_pem: client.cert_pem,
        client_key_pem: client.key_pem,
        timeout,
    })
}
