//! Running the stand-in: on its own thread (synchronous tests) or on the caller's runtime,
//! stopping on drop either way so the address is free again.

use std::net::{SocketAddr, TcpStream};

use vkube_test_support::kube_api::{StandIn, StandInOptions, TestCa};

use crate::client::Client;
use crate::own_loopback_ip;

fn options(ca: &TestCa, addr: SocketAddr) -> StandInOptions {
    StandInOptions::with_ca(&ca.cert_pem, &ca.key_pem).listen(addr)
}

#[test]
fn thread_stand_in_stops_on_drop_and_its_address_can_be_reused() {
    let ca = TestCa::new("kubernetes");
    let addr = SocketAddr::from((own_loopback_ip(), 6443));
    let admin = ca.client("kubernetes-admin", "kubeadm:cluster-admins");
    let stand_in = StandIn::start(options(&ca, addr));
    assert_eq!(
        Client::new(addr, &ca.cert_pem, &admin)
            .get("/version")
            .unwrap()
            .status,
        200
    );
    let busy = StandIn::try_start(options(&ca, addr))
        .err()
        .expect("the address is taken");
    assert!(
        busy.to_string()
            .contains(&format!("cannot listen on {addr}")),
        "{busy}"
    );
    drop(stand_in);
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens after drop"
    );

    let again = StandIn::start(options(&ca, addr));
    assert_eq!(
        Client::new(addr, &ca.cert_pem, &admin)
            .get("/version")
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        again.requests().len(),
        1,
        "a new stand-in starts with a clean record"
    );
}

#[tokio::test]
async fn async_stand_in_runs_on_the_callers_runtime_and_stops_on_drop() {
    let ca = TestCa::new("kubernetes");
    let addr = SocketAddr::from((own_loopback_ip(), 0));
    let admin = ca.client("kubernetes-admin", "kubeadm:cluster-admins");
    let stand_in = StandIn::start_async(options(&ca, addr)).await;
    let addr = stand_in.addr();
    let ca_pem = ca.cert_pem.clone();
    let answer =
        tokio::task::spawn_blocking(move || Client::new(addr, &ca_pem, &admin).get("/version"))
            .await
            .unwrap()
            .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(
        stand_in.client_certificates()[0].common_name.as_deref(),
        Some("kubernetes-admin")
    );
    drop(stand_in);
    tokio::task::yield_now().await;
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens after drop"
    );
}
