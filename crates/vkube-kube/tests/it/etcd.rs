//! The etcd client against a REAL etcd (Debian's `etcd-server`): three members on loopback
//! addresses, TLS both ways with certificates from an etcd CA made by vkube-core
//! (`ClusterPki::etcd_ca`, `etcd_server_certificate`, `etcd_client_certificate`), as kubeadm
//! runs etcd. Member list, health, TLS refusals, and guarded removals down to the last
//! member. Skipped with a note when etcd is not installed, unless `VKUBE_REQUIRE_ETCD=1`.

use std::time::{Duration, Instant, SystemTime};

use vkube_core::cluster::{
    CertificateAndKey, ClusterName, ClusterPki, ETCD_CLIENT_NAME, ETCD_CLIENT_VALIDITY,
};
use vkube_kube::etcd::{ClusterHealth, EtcdAccess, EtcdClient, EtcdError, MemberState};
use vkube_test_support::etcd::{test_random, EtcdCluster, EtcdClusterSpec, MemberSpec};

const NAMES: [&str; 3] = ["demo-cp-0", "demo-cp-1", "demo-cp-2"];

fn pki() -> ClusterPki {
    ClusterPki::generate(
        &ClusterName::new("demo").unwrap(),
        SystemTime::now(),
        &mut test_random(),
    )
    .unwrap()
}

fn client_certificate(pki: &ClusterPki) -> CertificateAndKey {
    pki.etcd_client_certificate(
        ETCD_CLIENT_NAME,
        SystemTime::now(),
        ETCD_CLIENT_VALIDITY,
        &mut test_random(),
    )
    .unwrap()
}

/// A three-member etcd with the certificates of `pki`, and vkube's client for it.
struct RealEtcd {
    pki: ClusterPki,
    cluster: EtcdCluster,
    client: EtcdClient,
}

impl RealEtcd {
    fn start() -> Option<RealEtcd> {
        let pki = pki();
        let members = MemberSpec::on_loopback(&NAMES, |name, ip| {
            let served = pki
                .etcd_server_certificate(
                    name,
                    &[ip],
                    SystemTime::now(),
                    Duration::from_secs(24 * 3600),
                    &mut test_random(),
                )
                .unwrap();
            (served.cert_pem, served.key_pem)
        });
        let probe = client_certificate(&pki);
        let cluster = EtcdCluster::start(&EtcdClusterSpec {
            ca_pem: pki.etcd_ca.pair.cert_pem.clone(),
            members,
            client_cert_pem: probe.cert_pem,
            client_key_pem: probe.key_pem,
        })?;
        let client = EtcdClient::new(&access(&pki, &pki, cluster.client_urls())).unwrap();
        Some(RealEtcd {
            pki,
            cluster,
            client,
        })
    }
}

/// Access trusting `trusted`'s etcd CA with a client certificate from `issuer`'s.
fn access(trusted: &ClusterPki, issuer: &ClusterPki, endpoints: Vec<String>) -> EtcdAccess {
    let client = client_certificate(issuer);
    EtcdAccess {
        endpoints,
        ca_pem: trusted.etcd_ca.pair.cert_pem.clone(),
        client_cert_pem: client.cert_pem,
        client_key_pem: client.key_pem,
        timeout: Duration::from_secs(5),
    }
}

/// The cluster's health once each member's health is as `expected` (by name), which a
/// membership change or a lost member reaches within an election or two; panics after 15 s.
async fn settled(client: &EtcdClient, expected: &[(&str, bool)]) -> ClusterHealth {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let health = client.health().await.unwrap();
        let states: Vec<(&str, bool)> = health
            .members
            .iter()
            .map(|m| (m.member.name.as_str(), m.state.is_healthy()))
            .collect();
        if states == expected {
            return health;
        }
        assert!(Instant::now() < deadline, "never {expected:?}: {health:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn names(members: &[vkube_kube::etcd::EtcdMember]) -> Vec<&str> {
    members.iter().map(|m| m.name.as_str()).collect()
}

#[tokio::test]
async fn real_etcd_member_list_and_health_over_tls_from_the_etcd_ca() {
    let started = Instant::now();
    let Some(etcd) = RealEtcd::start() else {
        return;
    };
    eprintln!("three etcd members up in {:?}", started.elapsed());

    let list = etcd.client.members().await.unwrap();
    assert_eq!(names(&list.members), NAMES);
    for member in &list.members {
        assert!(member.started() && !member.is_learner, "{member}");
        assert_eq!(member.client_urls, [etcd.cluster.client_url(&member.name)]);
    }
    assert_eq!(list.answered_by, etcd.cluster.client_url("demo-cp-0"));

    let health = etcd.client.health().await.unwrap();
    assert!(health.is_healthy(), "{health:?}");
    assert_eq!(health.cluster_id, list.cluster_id);
    let leader = health.leader().expect("the members agree on a leader");
    assert!(NAMES.contains(&leader.member.name.as_str()));
    for member in &health.members {
        let status = member.state.status().unwrap();
        assert!(status.version.starts_with("3."), "{status:?}");
        assert_eq!(status.leader, Some(leader.member.id));
        assert!(status.raft_index > 0 && status.db_size > 0, "{status:?}");
    }

    // The first endpoint down: the next one answers.
    let mut endpoints = vec!["https://127.0.0.1:1".to_string()];
    endpoints.extend(etcd.cluster.client_urls());
    let failover = EtcdClient::new(&access(&etcd.pki, &etcd.pki, endpoints)).unwrap();
    assert_eq!(failover.members().await.unwrap().members.len(), 3);

    // A client certificate from another cluster's etcd CA is refused by etcd; a client
    // trusting another CA refuses etcd's server certificate.
    let other = pki();
    let endpoint = vec![etcd.cluster.client_url("demo-cp-1")];
    let intruder = EtcdClient::new(&access(&etcd.pki, &other, endpoint.clone())).unwrap();
    let err = intruder.members().await.unwrap_err();
    assert!(
        matches!(&err, EtcdError::Tls { reason, .. } if reason.contains("refused the client certificate")),
        "{err:?}"
    );
    let misled = EtcdClient::new(&access(&other, &etcd.pki, endpoint)).unwrap();
    let err = misled.members().await.unwrap_err();
    assert!(
        matches!(&err, EtcdError::Tls { reason, .. } if reason == "the server certificate is not signed by the etcd CA"),
        "{err:?}"
    );
}

#[tokio::test]
async fn real_etcd_removals_keep_quorum_and_never_remove_the_last_member() {
    let Some(mut etcd) = RealEtcd::start() else {
        return;
    };
    let client = etcd.client.clone();
    let id_of = |list: &vkube_kube::etcd::MemberList, name: &str| list.named(name).unwrap().id;
    let list = client.members().await.unwrap();

    // demo-cp-2's VM goes away: it is unreachable; the others are healthy once they agree
    // on a leader (an election follows if it led).
    etcd.cluster.kill("demo-cp-2");
    let health = settled(
        &client,
        &[
            ("demo-cp-0", true),
            ("demo-cp-1", true),
            ("demo-cp-2", false),
        ],
    )
    .await;
    assert!(
        matches!(&health.member_named("demo-cp-2").unwrap().state, MemberState::Unreachable { reason } if reason.contains("connection refused")),
        "{:?}",
        health.member_named("demo-cp-2")
    );

    // Removing a healthy member now would leave 1 healthy of 2: refused, naming it.
    let err = client
        .remove_member(id_of(&list, "demo-cp-0"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, EtcdError::RemovalRefused { .. }), "{err:?}");
    assert!(
        text.starts_with("refusing to remove etcd member demo-cp-0 (")
            && text.contains(
                "the 2 voting members left would have 1 healthy, below their quorum of 2"
            )
            && text.contains("demo-cp-2 ("),
        "{text}"
    );
    assert_eq!(
        client.members().await.unwrap().members.len(),
        3,
        "nothing removed"
    );

    // Removing the dead member is safe.
    let removal = client
        .remove_member(id_of(&list, "demo-cp-2"))
        .await
        .unwrap();
    assert_eq!(removal.removed.name, "demo-cp-2");
    assert_eq!(names(&removal.remaining), ["demo-cp-0", "demo-cp-1"]);
    settled(&client, &[("demo-cp-0", true), ("demo-cp-1", true)]).await;

    // Removing the leader hands leadership over first; the removed member stops itself and
    // the client carries on with the next endpoint.
    let health = client.health().await.unwrap();
    let cp0 = health.member_named("demo-cp-0").unwrap();
    if health.leader().map(|l| l.member.id) != Some(cp0.member.id) {
        let leader = health.leader().unwrap().endpoint.clone().unwrap();
        client.move_leader(&leader, cp0.member.id).await.unwrap();
    }
    let removal = client.remove_member(cp0.member.id).await.unwrap();
    assert_eq!(
        removal
            .leadership_moved_to
            .as_ref()
            .map(|m| m.name.as_str()),
        Some("demo-cp-1")
    );
    assert_eq!(names(&removal.remaining), ["demo-cp-1"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while etcd.cluster.is_running("demo-cp-0") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !etcd.cluster.is_running("demo-cp-0"),
        "{}",
        etcd.cluster.log("demo-cp-0")
    );
    let health = settled(&client, &[("demo-cp-1", true)]).await;
    assert_eq!(health.leader().unwrap().member.name, "demo-cp-1");

    // The last member is never removed.
    let err = client
        .remove_member(id_of(&list, "demo-cp-1"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("refusing to remove etcd member demo-cp-1 (")
            && err.to_string().contains("it is the last member"),
        "{err}"
    );
    assert_eq!(
        names(&client.members().await.unwrap().members),
        ["demo-cp-1"]
    );
}
