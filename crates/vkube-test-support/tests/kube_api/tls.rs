//! Mutual TLS with a CA the test supplies (as PEM, the way a CLI test reads vkube's cluster CA
//! from its state): the server certificate names the listen IP, clients of that CA get in and
//! are recorded with their user and groups, clients of another CA do not.

use std::net::SocketAddr;

use vkube_test_support::kube_api::{StandIn, StandInOptions, TestCa};

use crate::client::Client;
use crate::own_loopback_ip;

/// A CA as a test would find it in vkube's state: PEM text only.
fn supplied_ca() -> (String, String) {
    let ca = TestCa::new("kubernetes");
    (ca.cert_pem.clone(), ca.key_pem.clone())
}

#[test]
fn supplied_ca_serves_on_a_fixed_vip_port_and_records_the_admin_group() {
    let (ca_pem, ca_key) = supplied_ca();
    let ip = own_loopback_ip();
    let addr = SocketAddr::from((ip, 6443));
    let stand_in = StandIn::start(StandInOptions::with_ca(&ca_pem, &ca_key).listen(addr));
    assert_eq!(stand_in.addr(), addr);
    assert_eq!(stand_in.endpoint(), format!("https://{ip}:6443"));

    let ca = TestCa::from_pem(&ca_pem, &ca_key);
    let admin = ca.client("kubernetes-admin", "kubeadm:cluster-admins");
    let answer = Client::new(addr, &ca_pem, &admin).get("/version").unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["gitVersion"], "v1.30.4");

    let certificates = stand_in.client_certificates();
    assert_eq!(certificates.len(), 1);
    assert_eq!(certificates[0].der, admin.cert_der);
    assert_eq!(
        certificates[0].common_name.as_deref(),
        Some("kubernetes-admin")
    );
    assert_eq!(certificates[0].organizations, ["kubeadm:cluster-admins"]);
    let requests = stand_in.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("GET", "/version")
    );
    assert_eq!(requests[0].status, 200);
    assert_eq!(requests[0].client.as_ref(), Some(&certificates[0]));
}

#[test]
fn supplied_ca_refuses_a_client_certificate_from_another_ca() {
    let (ca_pem, ca_key) = supplied_ca();
    let stand_in = StandIn::start(
        StandInOptions::with_ca(&ca_pem, &ca_key).listen(SocketAddr::from((own_loopback_ip(), 0))),
    );
    let stranger = TestCa::new("kubernetes").client("kubernetes-admin", "kubeadm:cluster-admins");
    let err = Client::new(stand_in.addr(), &ca_pem, &stranger)
        .get("/version")
        .unwrap_err();
    // Same subject as the real CA, so the signature is what fails: the server's alert.
    assert!(err.to_string().contains("received fatal alert"), "{err}");
    assert_eq!(stand_in.handshake_failures(), 1);
    assert!(stand_in.requests().is_empty());
    assert!(stand_in.client_certificates().is_empty());

    // The CA's own admin still gets in.
    let admin =
        TestCa::from_pem(&ca_pem, &ca_key).client("kubernetes-admin", "kubeadm:cluster-admins");
    let answer = Client::new(stand_in.addr(), &ca_pem, &admin)
        .get("/version")
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(stand_in.requests().len(), 1);
}

#[test]
fn client_refuses_the_supplied_ca_stand_in_when_it_trusts_another_ca() {
    let (ca_pem, ca_key) = supplied_ca();
    let stand_in = StandIn::start(StandInOptions::with_ca(&ca_pem, &ca_key));
    let other = TestCa::new("kubernetes");
    let admin =
        TestCa::from_pem(&ca_pem, &ca_key).client("kubernetes-admin", "kubeadm:cluster-admins");
    let err = Client::new(stand_in.addr(), &other.cert_pem, &admin)
        .get("/version")
        .unwrap_err();
    // A CA of the same name: the chain is found, and its signature fails.
    assert!(
        err.to_string()
            .contains("invalid peer certificate: BadSignature"),
        "{err}"
    );
    assert!(stand_in.requests().is_empty());
}

#[test]
fn fixed_server_certificate_without_the_listen_ip_is_refused_by_the_client() {
    let ca = TestCa::new("kubernetes");
    let elsewhere = ca.server_certificate(&["192.0.2.10".parse().unwrap()]);
    let stand_in = StandIn::start(
        StandInOptions::with_server_certificate(elsewhere.clone(), &ca.cert_pem)
            .listen(SocketAddr::from((own_loopback_ip(), 0))),
    );
    assert_eq!(stand_in.server_certificate().cert_der, elsewhere.cert_der);
    let admin = ca.client("kubernetes-admin", "kubeadm:cluster-admins");
    let err = Client::new(stand_in.addr(), &ca.cert_pem, &admin)
        .get("/version")
        .unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
}

#[test]
#[should_panic(expected = "the key does not belong to the CA certificate")]
fn supplied_ca_with_the_key_of_another_ca_is_refused() {
    let (ca_pem, _) = supplied_ca();
    let (_, other_key) = supplied_ca();
    let _ = StandInOptions::with_ca(&ca_pem, &other_key);
}

#[test]
#[should_panic(expected = "the CA certificate is not PEM")]
fn supplied_ca_that_is_not_pem_is_refused() {
    let (_, key) = supplied_ca();
    let _ = StandInOptions::with_ca("not a certificate", &key);
}

#[test]
fn debug_output_of_key_material_leaves_the_keys_out() {
    let ca = TestCa::new("kubernetes");
    let issued = ca.client("a", "b");
    for shown in [format!("{ca:?}"), format!("{issued:?}")] {
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
