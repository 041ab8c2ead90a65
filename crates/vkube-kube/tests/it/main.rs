//! vkube-kube against a stand-in kube-apiserver serving recorded responses over mutual TLS
//! (no real API server can run here; every test that relies on the stand-in says so in its
//! name), and its etcd client against a real etcd (`real_etcd_*`).

mod apply;
mod bootstrap_token;
mod connect;
mod drain;
mod etcd;
mod health;
mod nodes;
mod support;

use support::TestPki;
use vkube_kube::KubeClient;
use vkube_test_support::kube_api::StandIn;

/// A fresh cluster PKI, a stand-in serving it, and an admin client for it.
async fn stand_in_with_client() -> (TestPki, StandIn, KubeClient) {
    let pki = TestPki::new();
    let stand_in = pki.stand_in().await;
    let client = KubeClient::new(&pki.admin_access(&stand_in.endpoint())).unwrap();
    (pki, stand_in, client)
}
