//! The API server's readiness: `ok` from the stand-in, the recorded 500 of a server that
//! cannot reach etcd, the `/healthz` fallback, and an API that does not answer — in one line.

use std::time::Duration;

use vkube_kube::{ApiHealth, ClusterAccess, ClusterApi, Error, KubeClient};
use vkube_test_support::kube_api::fixtures::{
    READYZ_ETCD_FAILED, STATUS_401_UNAUTHORIZED, STATUS_404_NOT_FOUND,
};
use vkube_test_support::kube_api::Reply;

use crate::stand_in_with_client;
use crate::support::TestPki;

#[tokio::test]
async fn stand_in_readyz_ok_is_ready() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    assert_eq!(client.api_health().await.unwrap(), ApiHealth::Ready);
    assert_eq!(stand_in.requests()[0].path, "/readyz");
}

#[tokio::test]
async fn stand_in_recorded_readyz_failure_names_the_failed_checks() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    stand_in.respond("GET", "/readyz", Reply::text(500, READYZ_ETCD_FAILED));
    let health = client.api_health().await.unwrap();
    assert_eq!(
        health,
        ApiHealth::NotReady {
            status: 500,
            failed_checks: vec!["etcd".into(), "etcd-readiness".into()],
        }
    );
    assert!(!health.is_ready());
}

#[tokio::test]
async fn stand_in_without_readyz_falls_back_to_healthz() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    stand_in.respond("GET", "/readyz", Reply::json(404, STATUS_404_NOT_FOUND));
    assert_eq!(client.api_health().await.unwrap(), ApiHealth::Ready);
    let paths: Vec<String> = stand_in.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/readyz", "/healthz"]);
}

#[tokio::test]
async fn stand_in_readyz_401_is_unauthorized() {
    let (_pki, stand_in, client) = stand_in_with_client().await;
    stand_in.answer_everything_with(Reply::json(401, STATUS_401_UNAUTHORIZED));
    let err = client.api_health().await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn api_health_of_a_closed_port_is_unreachable_in_one_line() {
    let pki = TestPki::new();
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let access = ClusterAccess {
        timeout: Duration::from_millis(500),
        ..pki.admin_access(&format!("https://127.0.0.1:{port}"))
    };
    let client = KubeClient::new(&access).unwrap();
    let err = client.api_health().await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    let text = err.to_string();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert_eq!(
        text,
        format!(
            "the Kubernetes API at https://127.0.0.1:{port} is unreachable: connection refused"
        )
    );
}
