//! Test support: the cluster key material of one test and a stand-in API server serving it
//! (the stand-in itself lives in `vkube_test_support::kube_api`).

use std::time::Duration;

use vkube_kube::ClusterAccess;
use vkube_test_support::kube_api::{Issued, StandIn, StandInOptions, TestCa};

/// The material of one test cluster: its CA and an admin certificate like kubeadm's
/// admin.conf.
pub struct TestPki {
    pub ca: TestCa,
    pub admin: Issued,
}

impl TestPki {
    pub fn new() -> TestPki {
        let ca = TestCa::new("kubernetes");
        let admin = ca.client("kubernetes-admin", "kubeadm:cluster-admins");
        TestPki { ca, admin }
    }

    /// Access to `endpoint` as the admin.
    pub fn admin_access(&self, endpoint: &str) -> ClusterAccess {
        ClusterAccess {
            endpoint: endpoint.to_string(),
            ca_pem: self.ca.cert_pem.clone(),
            client_cert_pem: self.admin.cert_pem.clone(),
            client_key_pem: self.admin.key_pem.clone(),
            timeout: Duration::from_secs(5),
        }
    }

    /// A stand-in for this cluster on a free loopback port: its server certificate issued by
    /// the CA (supplied as PEM, as a test reads vkube's), its clients verified against it.
    pub async fn stand_in(&self) -> StandIn {
        StandIn::start_async(StandInOptions::with_ca(&self.ca.cert_pem, &self.ca.key_pem)).await
    }
}
